"""The add-on trusts nothing a server sends with a path: a scene id with `..` or an absolute
one is refused before any file is written, and the next good result still imports. Remote mode
will not connect to a non-loopback address without the server's key."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest

from .conftest import ADDON_MODULE, submodule
from .test_importers import build_result


@pytest.mark.parametrize("scene_id", ["..", "../../escape", "/tmp/videoscene-escape", "a/b", ""])
def test_a_hostile_scene_id_is_refused_and_the_next_build_imports(addon, scene_id, tmp_path):
    workflow = submodule("workflow")
    errors = submodule("_vendor.videoscene_protocol.errors")
    output_dir = Path(bpy.context.preferences.addons[ADDON_MODULE].preferences.output_dir)
    hostile = build_result(200)
    hostile.meta["scene_id"] = scene_id
    before = set(output_dir.parent.iterdir())
    with pytest.raises(errors.VideoSceneError) as caught:
        workflow.import_build_result(bpy.context, bpy.context.scene, hostile)
    assert caught.value.code == errors.ErrorCode.BAD_MESSAGE and "scene id" in caught.value.message
    assert set(output_dir.parent.iterdir()) == before
    assert not list(output_dir.rglob("scene.ply"))
    assert not Path("/tmp/videoscene-escape").exists()
    empty = workflow.import_build_result(bpy.context, bpy.context.scene, build_result(200))
    assert empty["videoscene_scene_id"] == "abc123"
    folder = output_dir / "scenes" / "abc123"
    if os.name == "posix":
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_remote_mode_needs_the_server_key_off_loopback(addon, monkeypatch):
    glue = submodule("client_glue")
    errors = submodule("_vendor.videoscene_protocol.errors")
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend_mode = "REMOTE"
    prefs.remote_address = "tcp://192.0.2.10:5557"
    # The bpy module runs with online access off (read-only): pass that check, reach the key one.
    online = SimpleNamespace(app=SimpleNamespace(online_access=True), path=bpy.path)
    monkeypatch.setattr(glue, "bpy", online)
    with pytest.raises(errors.VideoSceneError) as caught:
        glue.connection_settings(prefs)
    assert "server's key" in caught.value.message and caught.value.hint
    prefs.remote_address = "tcp://127.0.0.1:5557"  # loopback: keys stay optional
    assert glue.connection_settings(prefs) == ("tcp://127.0.0.1:5557", {}, False)

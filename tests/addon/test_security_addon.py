"""The add-on trusts nothing a server sends with a path: a scene id with `..` or an absolute
one is refused before any file is written, and the next good result still imports. Remote mode
will not connect to a non-loopback address without the server's key."""

from __future__ import annotations

import os
import stat
import sys
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


def test_a_squatter_on_the_local_port_gets_no_photos(addon, tmp_path):
    """Another user's server took the local port first: the add-on's CURVE handshake (its own
    backend's key, from a 0700 folder) fails, so no message reaches the squatter."""
    import zmq

    from .test_client_glue import step_until_idle, use_photos

    context = zmq.Context()
    squatter = context.socket(zmq.ROUTER)
    port = squatter.bind_to_random_port("tcp://127.0.0.1")
    try:
        prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
        prefs.local_address = f"tcp://127.0.0.1:{port}"
        # the add-on's own backend does not start (the squatter holds the port): it sleeps
        prefs.local_command = f'"{sys.executable}" -c "import time; time.sleep(20)"'
        prefs.start_timeout_s = 1.5
        use_photos(tmp_path)
        assert bpy.ops.videoscene.build_scene() == {"FINISHED"}
        step_until_idle(max_steps=1000)
        state = bpy.context.window_manager.videoscene_state
        assert state.error_message  # it could not connect, and says so
        assert squatter.poll(200) == 0  # not one frame arrived: no hello, no photos
        keys = Path(prefs.output_dir) / "local-keys"
        if os.name == "posix":
            assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    finally:
        submodule("client_glue").shutdown(stop_backend=True)
        squatter.close(linger=0)
        context.term()

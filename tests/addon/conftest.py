"""Fixtures for the add-on tests (bpy module; run as `.venv/bin/pytest tests/addon`).

The add-on is built into a zip with build_addon.py (current platform, Blender 4.2-5.0 build),
installed into a temporary extensions repository and enabled, once per session. Each test starts
from a fresh home file.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import bpy
import pytest

# addon_utils sits on the path bpy sets up, so it is imported after bpy.
addon_utils = importlib.import_module("addon_utils")

ROOT = Path(__file__).resolve().parents[2]
REPO_MODULE = "videoscene_test_repo"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.videoscene"


def _build_zip(output_dir: Path) -> Path:
    wheels = ROOT / "blender_addon" / "wheels" / "py311"
    offline = ["--offline"] if wheels.is_dir() and any(wheels.glob("pyzmq-*.whl")) else []
    command = [sys.executable, str(ROOT / "build_addon.py"), "--platform", "current"]
    command += ["--variant", "py311", "--output-dir", str(output_dir), *offline]
    subprocess.run(command, check=True, capture_output=True, timeout=240)
    (archive,) = output_dir.glob("videoscene-blender4.2-5.0-*.zip")
    return archive


# The add-on vendors these protocol modules (engineers A and B); without them it cannot load.
REQUIRED_PROTOCOL_MODULES = ("client.py", "cameras.py", "errors.py")


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [m for m in REQUIRED_PROTOCOL_MODULES if not (ROOT / "protocol" / m).is_file()]
    if missing:
        pytest.skip(f"protocol/{', '.join(missing)} not in the tree yet: the add-on cannot load")
    return _build_zip(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed_addon(addon_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """Install the built zip into a temporary repository and enable it."""
    repo_dir = tmp_path_factory.mktemp("extensions")
    repos = bpy.context.preferences.extensions.repos
    repo = repos.new(name="VideoScene tests", module=REPO_MODULE, custom_directory=str(repo_dir))
    result = bpy.ops.extensions.package_install_files(
        filepath=str(addon_zip), repo=REPO_MODULE, enable_on_install=False
    )
    assert result == {"FINISHED"}
    assert (repo_dir / "videoscene" / "blender_manifest.toml").is_file()
    module = addon_utils.enable(ADDON_MODULE, default_set=True, handle_error=_raise)
    assert module is not None
    yield module
    addon_utils.disable(ADDON_MODULE, default_set=True, handle_error=_raise)
    repos.remove(repo)


def _raise(exc: BaseException) -> None:
    raise exc


def submodule(name: str) -> ModuleType:
    return importlib.import_module(f"{ADDON_MODULE}.{name}")


@pytest.fixture
def addon(installed_addon: ModuleType) -> ModuleType:
    """The enabled add-on, with a fresh scene and output folder for this test."""
    bpy.ops.wm.read_homefile(app_template="")
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    for prop in prefs.bl_rna.properties:  # preferences outlive the file: back to defaults
        if prop.identifier != "rna_type" and not prop.is_readonly:
            prefs.property_unset(prop.identifier)
    prefs.output_dir = tempfile.mkdtemp(prefix="videoscene-test-")
    state = bpy.context.window_manager.videoscene_state
    state.error_message = state.error_hint = state.refine_message = ""
    state.status, state.busy = "Idle", False
    yield installed_addon
    submodule("client_glue").shutdown(stop_backend=True)


def keyframed_camera(
    scene: bpy.types.Scene, start: int = 1, end: int = 49, name: str = "Path Camera"
) -> bpy.types.Object:
    """A camera moving along +X while turning a little, keyframed at start and end."""
    camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    scene.collection.objects.link(camera)
    camera.location = (0.0, -5.0, 1.0)
    camera.rotation_euler = (1.3, 0.0, 0.0)
    camera.keyframe_insert("location", frame=start)
    camera.keyframe_insert("rotation_euler", frame=start)
    camera.location = (2.0, -5.0, 1.0)
    camera.rotation_euler = (1.3, 0.0, 0.3)
    camera.keyframe_insert("location", frame=end)
    camera.keyframe_insert("rotation_euler", frame=end)
    scene.frame_start, scene.frame_end = start, end
    scene.camera = camera
    return camera

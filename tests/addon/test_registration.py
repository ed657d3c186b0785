"""The built zip installs, registers and unregisters cleanly; defaults are sensible."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import bpy

from .conftest import ADDON_MODULE, addon_utils, random_splat, submodule


def test_zip_manifest_is_filled_per_build(addon_zip):
    """The zip this Blender's Python installs: 4.5-5.0 (cp311 wheels) or 5.1+ (abi3)."""
    with zipfile.ZipFile(addon_zip) as archive:
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        names = archive.namelist()
    assert manifest["id"] == "videoscene"
    if sys.version_info < (3, 12):
        assert manifest["blender_version_min"] == "4.5.0"
        assert manifest["blender_version_max"] == "5.1.0"
        wheel_tag = "cp311"
    else:
        assert manifest["blender_version_min"] == "5.1.0"
        assert "blender_version_max" not in manifest
        wheel_tag = "abi3"
    assert bpy.app.version >= tuple(map(int, manifest["blender_version_min"].split(".")))
    assert len(manifest["tagline"]) <= 64
    assert all(len(reason) <= 64 for reason in manifest["permissions"].values())
    (wheel,) = manifest["wheels"]
    assert "pyzmq" in wheel and wheel_tag in wheel and wheel[2:] in names
    assert "_vendor/videoscene_protocol/client.py" in names
    assert not any("__pycache__" in name for name in names)


def test_enabled_addon_registers_ui(addon):
    assert addon.__name__ == ADDON_MODULE
    assert hasattr(bpy.types, "VIDEOSCENE_PT_view3d")
    assert hasattr(bpy.types, "VIDEOSCENE_PT_sequencer")
    assert bpy.types.VIDEOSCENE_PT_view3d.bl_category == "VideoScene"
    for name in ("build_scene", "generate_video", "cancel", "release_gpu", "keyframe_flythrough"):
        assert hasattr(bpy.ops.videoscene, name)
    assert hasattr(bpy.ops.videoscene, "import_splat_ply")
    assert hasattr(bpy.ops.videoscene, "export_splat_ply")
    assert bpy.context.scene.videoscene is not None


def test_unregister_and_register_again(addon):
    addon_utils.disable(ADDON_MODULE, default_set=True)
    assert not hasattr(bpy.types, "VIDEOSCENE_PT_view3d")
    assert not hasattr(bpy.types.Scene, "videoscene")
    assert not hasattr(bpy.types.WindowManager, "videoscene_state")
    module = addon_utils.enable(ADDON_MODULE, default_set=True)
    assert module is not None
    assert hasattr(bpy.types, "VIDEOSCENE_PT_view3d")
    assert bpy.context.scene.videoscene.prior == "auto"


def test_property_defaults(addon):
    settings = bpy.context.scene.videoscene
    assert settings.prior == "auto"
    assert settings.refine is True
    assert settings.use_scene_range is True
    assert settings.leap_timestep_auto is True  # sent as null: the model's default
    assert settings.mode == "one_step"
    assert settings.memory_mode == "default"  # resolves to the preferences' mode
    assert settings.condition_source == "rendered"
    assert settings.camera is None and settings.scene_empty is None
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    assert prefs.backend_mode == "LOCAL"
    assert prefs.local_address == "tcp://127.0.0.1:5557"
    assert "{address}" in prefs.local_command
    assert prefs.default_memory_mode == "auto"
    state = bpy.context.window_manager.videoscene_state
    assert state.busy is False and state.progress == 0.0


def test_panels_draw_without_errors(addon):
    """Drawing needs a real UI; check the draw functions run against a layout-like recorder."""
    panels = submodule("ui.panels")
    calls: list[tuple[str, tuple]] = []

    class Recorder:
        def __getattr__(self, name):
            def record(*args, **kwargs):
                calls.append((name, args))
                return self

            return record

    panels.draw_main(Recorder(), bpy.context)
    panels.draw_advanced(Recorder(), bpy.context)
    operators = {args[0] for name, args in calls if name == "operator"}
    assert {"videoscene.build_scene", "videoscene.generate_video", "videoscene.cancel"} <= operators
    props = {args[1] for name, args in calls if name == "prop"}
    assert {"image_a", "image_b", "camera", "prior", "leap_timestep", "refine"} <= props
    assert {"video_frames", "iterations", "downscale", "max_views"} <= props  # Rebuild's


def test_the_splat_display_box_draws_real_controls(addon):
    """The active splat's box: every prop it draws resolves (5.2 moved nodes-modifier inputs
    from ID properties to RNA), and Blender's own splats get no order buttons."""
    panels = submodule("ui.panels")
    obj = submodule("importers.splat").import_splat(
        bpy.context, random_splat(30), None, bpy.context.scene.collection
    )
    bpy.context.view_layer.objects.active = obj
    calls: list[tuple[str, tuple, dict]] = []

    class Recorder:
        def __getattr__(self, name):
            def record(*args, **kwargs):
                calls.append((name, args, kwargs))
                return self

            return record

    panels.draw_splat_display(Recorder(), bpy.context)
    props = [(args, kwargs) for name, args, kwargs in calls if name == "prop"]
    every = [args for args, kwargs in props if kwargs.get("text") == "Viewport: Every k-th"]
    ((owner, path),) = every
    assert owner.path_resolve(path) == 1  # the modifier's Viewport Every input, default 1
    operators = {args[0] for name, args, _kwargs in calls if name == "operator"}
    assert "videoscene.splat_colours" in operators
    native = submodule("display").is_native_splat(obj)
    assert ("videoscene.splat_order" in operators) != native


def test_remote_address_respects_online_access(addon):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend_mode = "REMOTE"
    prefs.remote_address = "tcp://203.0.113.7:5557"
    assert bpy.app.online_access is False  # the bpy module runs offline
    session = submodule("client_glue").SESSION
    errors = submodule("_vendor.videoscene_protocol.errors")
    try:
        session._open()
    except errors.VideoSceneError as error:
        assert "Online access is off" in error.message
        assert "Preferences" in error.hint
    else:
        raise AssertionError("a non-loopback address must be refused while online access is off")
    assert session.client is None


# Install, enable, use the pickers, disable, remove the repository, exit: what a user does
# when trying the add-on out. Blender 4.2 crashed at exit (code 139) after this cycle while a
# poll callback or a property-group method lived in a module that imports bpy.
CYCLE_SCRIPT = """
import importlib, sys, tempfile
import bpy
addon_utils = importlib.import_module("addon_utils")
repos = bpy.context.preferences.extensions.repos
repo = repos.new(name="cycle", module="videoscene_cycle", custom_directory=tempfile.mkdtemp())
assert bpy.ops.extensions.package_install_files(
    filepath=sys.argv[1], repo="videoscene_cycle", enable_on_install=False
) == {"FINISHED"}
def fail(exc):
    raise exc
assert addon_utils.enable("bl_ext.videoscene_cycle.videoscene", default_set=True, handle_error=fail)
settings = bpy.context.scene.videoscene
camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
empty = bpy.data.objects.new("empty", None)
settings.camera, settings.scene_empty = camera, empty
assert settings.active_camera(bpy.context.scene) == camera
assert settings.frame_range(bpy.context.scene) == (1, 250)
addon_utils.disable("bl_ext.videoscene_cycle.videoscene", default_set=True, handle_error=fail)
repos.remove(repo)
print("cycle finished", bpy.app.version_string)
"""


def test_enable_disable_remove_cycle_exits_cleanly(addon_zip: Path, tmp_path: Path):
    script = tmp_path / "cycle.py"
    script.write_text(CYCLE_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), str(addon_zip)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert "cycle finished" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0, f"exit code {run.returncode}: {run.stderr[-2000:]}"

"""Fixtures for the add-on tests (bpy module; run as `.venv/bin/pytest tests/addon`).

The add-on is built into a zip with build_addon.py (current platform, the build this Blender's
Python installs: py311 for 4.5-5.0, abi3 for 5.1+),
installed into a temporary extensions repository and enabled, once per session. Each test starts
from a fresh home file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import bpy
import numpy as np
import pytest

# addon_utils sits on the path bpy sets up, so it is imported after bpy.
addon_utils = importlib.import_module("addon_utils")

ROOT = Path(__file__).resolve().parents[2]
EXIT_STATUS = pytest.StashKey[int]()
REPO_MODULE = "videoscene_test_repo"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.videoscene"


def pytest_terminal_summary(terminalreporter) -> None:
    """Say which Blender this run tested (dev.sh runs the suite under each of
    tools/blender_matrix.txt)."""
    terminalreporter.write_line(f"add-on tests ran under bpy {bpy.app.version_string}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process with the session's status once pytest is done with it. bpy 4.5's own
    exit handlers can deadlock (a static GlobalState's destructor waits on a condition its
    delayed_close_thread still waits on: seen after this suite, which then never exits), so
    they are skipped; everything of ours is written and closed by now."""
    if EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[EXIT_STATUS])


# The backend runs in its own environment: the one beside this Python, or the one named by
# VIDEOSCENE_TEST_BACKEND (dev.sh sets it for the other Blenders' suites, whose venvs have bpy
# only).
BACKEND = Path(
    os.environ.get("VIDEOSCENE_TEST_BACKEND")
    or Path(sys.executable).with_name("videoscene-backend")
)


def _build_zip(output_dir: Path) -> Path:
    """Built as a user builds it: by the Python of the venv that holds the backend (when it is
    there), so the zip records that venv's videoscene-backend (test_find_backend.py)."""
    backend_python = BACKEND.with_name("python" + Path(sys.executable).suffix)
    python = backend_python if backend_python.exists() else Path(sys.executable)
    command = [str(python), str(ROOT / "build_addon.py"), "--platform", "current"]
    variant = _build_addon().variant_for_python(sys.version_info[:2])
    wheels = ROOT / "blender_addon" / "wheels" / variant.name
    offline = ["--offline"] if wheels.is_dir() and any(wheels.glob("pyzmq-*.whl")) else []
    command += ["--variant", variant.name, "--output-dir", str(output_dir), *offline]
    subprocess.run(command, check=True, capture_output=True, timeout=240)
    (archive,) = output_dir.glob(f"videoscene-{variant.label}-*.zip")
    return archive


def _build_addon() -> ModuleType:
    """build_addon.py as a module (its variants say which zip a Python installs)."""
    spec = importlib.util.spec_from_file_location("build_addon", ROOT / "build_addon.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_addon", module)
    spec.loader.exec_module(module)
    return module


# The add-on vendors these protocol modules; without them it cannot load.
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


def native_splats() -> bool:
    """True where the add-on makes Blender's own Gaussian splats (5.3+)."""
    return submodule("compat").native_gaussian_splats()


# The same feature check as compat.native_gaussian_splats, readable before the add-on is
# installed (for skip marks); test_native.py checks that the two agree.
BLENDER_HAS_NATIVE_SPLATS = (
    "GAUSSIAN_SPLAT"
    in getattr(bpy.types.PointCloud.bl_rna.properties.get("type"), "enum_items", {}).keys()
)
# Tests of the add-on's own display (material, sort, Solid companion): what Blender before 5.3
# shows. From 5.3 Blender draws the splat itself (test_native.py).
addon_display_only = pytest.mark.skipif(
    BLENDER_HAS_NATIVE_SPLATS, reason="Blender draws Gaussian splats itself here (5.3+)"
)


def splat_objects() -> list[bpy.types.Object]:
    """Objects holding splat points: the add-on's display (its "opacity") or Blender's own
    Gaussian splat (its "radiance:base")."""
    return [
        obj
        for obj in bpy.data.objects
        if obj.type in {"POINTCLOUD", "MESH"}
        and {"opacity", "radiance:base"} & set(obj.data.attributes.keys())
    ]


# Attribute data type -> (foreach key, values per point) for reading what Blender shows.
ATTRIBUTE_LAYOUT = {
    "FLOAT": ("value", 1),
    "FLOAT_VECTOR": ("vector", 3),
    "FLOAT_COLOR": ("color", 4),
    "QUATERNION": ("value", 4),
}


def evaluated_point_cloud(obj: bpy.types.Object) -> dict:
    """What Blender shows for `obj`: the point count of its evaluated point cloud, the float
    POINT attributes as (count, width) arrays, and the point cloud's materials."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for instance in depsgraph.object_instances:  # instances are only valid inside the loop
        shown = instance.object
        if shown.original != obj or shown.type != "POINTCLOUD":
            continue
        cloud, attributes = shown.data, {}
        for attribute in cloud.attributes:
            if attribute.domain == "POINT" and attribute.data_type in ATTRIBUTE_LAYOUT:
                key, width = ATTRIBUTE_LAYOUT[attribute.data_type]
                values = np.empty(len(cloud.points) * width, dtype=np.float32)
                attribute.data.foreach_get(key, values)
                attributes[attribute.name] = values.reshape(len(cloud.points), width)
        materials = [material.name for material in cloud.materials if material is not None]
        return {"count": len(cloud.points), "attributes": attributes, "materials": materials}
    raise AssertionError(f"{obj.name} shows no point cloud")


def random_splat(
    count: int, seed: int = 0, opacity: tuple[float, float] = (0.0, 1.0)
) -> dict[str, np.ndarray]:
    """Random splat arrays as the backend sends them (unit quaternions, linear values)."""
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(count, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return {
        "means": rng.normal(size=(count, 3)).astype(np.float32),
        "quats": quats,
        "scales": rng.uniform(0.01, 0.1, size=(count, 3)).astype(np.float32),
        "opacities": rng.uniform(*opacity, size=count).astype(np.float32),
        "colors": rng.uniform(0.0, 1.0, size=(count, 3)).astype(np.float32),
    }

"""End to end against a real backend process started by the add-on (local mode).

Build Scene with the stereo prior on two photos, Generate Video (coarse, then refine without
weights), a killed backend, the silent re-send after a restart, one-click Generate and bad
input. Each job is waited for on its events: the session is stepped until idle (timers never
fire in the bpy module) for as long as the job reports progress.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Matrix

from .conftest import (
    ADDON_MODULE,
    BACKEND,
    ROOT,
    evaluated_point_cloud,
    keyframed_camera,
    random_splat,
    splat_objects,
    submodule,
)

# Jobs are waited for by stepping the session until it is idle, for as long as they report
# progress: a 49-frame CPU render on a busy 2-core machine has taken over 20 minutes. A job
# that reports nothing for STALL_S hangs; the ceiling is only the last resort.
STALL_S = 600.0
JOB_CEILING_S = 3600.0

pytestmark = [
    pytest.mark.skipif(not BACKEND.exists(), reason="videoscene-backend not installed"),
    pytest.mark.timeout(2 * JOB_CEILING_S),  # above the suite's 600 s: a test runs several jobs
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample_photos(tmp_path: Path) -> tuple[Path, Path]:
    """The repository's sample photos, or two views of a textured plane (a horizontal shift)."""
    samples = sorted((ROOT / "samples").glob("*.jp*g")) + sorted((ROOT / "samples").glob("*.png"))
    if len(samples) >= 2:
        return samples[0], samples[1]
    sequencer = submodule("importers.sequencer")
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, size=(240, 360, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture[::4, ::4], 4, axis=0), 4, axis=1)[:240, :360]
    views = np.stack([texture[:, 16:336], texture[:, 4:324]])
    paths = sequencer.write_pngs(views, tmp_path / "photos", prefix="view")
    return paths[0], paths[1]


def configure(tmp_path: Path) -> None:
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend_mode = "LOCAL"
    prefs.local_address = f"tcp://127.0.0.1:{free_port()}"
    prefs.local_command = f"{BACKEND} serve --bind {{address}} --output-dir {{output_dir}}"
    prefs.start_timeout_s = 90.0
    settings = bpy.context.scene.videoscene
    photo_a, photo_b = sample_photos(tmp_path)
    settings.image_a, settings.image_b = str(photo_a), str(photo_b)
    settings.prior = "stereo"
    settings.keyframe_flythrough = False
    # Video at the scene's output size: keep it small (the CPU renderer is slow).
    render = bpy.context.scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1920, 1080, 5


def run_until_idle(
    ceiling_s: float = JOB_CEILING_S, stall_s: float = STALL_S, on_step=None
) -> None:
    """Step the session (what Blender's timer does) until no job is pending; fail when its
    status and progress stop changing for `stall_s`, or after `ceiling_s` in all. `on_step` is
    called after every step (to watch the scene while jobs run)."""
    client_glue = submodule("client_glue")
    state = bpy.context.window_manager.videoscene_state
    start = last_event = time.monotonic()
    seen = (state.status, state.progress)
    while True:
        more = client_glue.step()
        if on_step is not None:
            on_step()
        if not more and not state.busy:
            return
        now = time.monotonic()
        if (state.status, state.progress) != seen:
            seen, last_event = (state.status, state.progress), now
        if now - last_event > stall_s:
            raise AssertionError(f"no job event for {stall_s} s: {state.status}")
        if now - start > ceiling_s:
            raise AssertionError(f"still busy after {ceiling_s} s: {state.status}")
        time.sleep(0.05)


def assert_no_error() -> None:
    state = bpy.context.window_manager.videoscene_state
    assert not state.error_message, f"{state.status}: {state.error_message} ({state.error_hint})"


def strips(scene: bpy.types.Scene) -> list:
    return list(submodule("compat").sequence_editor_strips(scene))


@pytest.mark.backend_paths
def test_build_generate_kill_and_resend(addon, tmp_path):
    configure(tmp_path)
    scene = bpy.context.scene
    camera = keyframed_camera(scene, 1, 12)
    settings = scene.videoscene
    settings.camera = camera

    assert bpy.ops.videoscene.build_scene() == {"FINISHED"}
    run_until_idle()
    assert_no_error()
    empty = settings.scene_empty
    assert empty is not None and empty["videoscene_scene_id"]
    (cloud,) = [c for c in empty.children if c in splat_objects()]
    assert evaluated_point_cloud(cloud)["count"] > 1000
    assert len([c for c in empty.children if c.type == "CAMERA"]) == 2
    assert Path(empty["videoscene_ply"]).stat().st_size > 1000

    # Coarse only: one strip over the range, one PNG per scene frame.
    settings.refine = False
    assert bpy.ops.videoscene.generate_video() == {"FINISHED"}
    run_until_idle()
    assert_no_error()
    (coarse,) = strips(scene)
    assert submodule("compat").strip_span(coarse) == (1, 13) and not coarse.mute
    assert len(coarse.elements) == 12
    first = Path(bpy.path.abspath(coarse.directory)) / coarse.elements[0].filename
    assert first.is_file() and first.parent.name == "coarse"

    # Kill the backend: the next job reports it within a bounded number of steps.
    backend_process = submodule("backend_process")
    os.kill(backend_process.pid(), signal.SIGKILL)
    assert bpy.ops.videoscene.generate_video() == {"FINISHED"}
    run_until_idle(ceiling_s=60.0)  # the dead process is noticed within a few steps
    state = bpy.context.window_manager.videoscene_state
    assert state.error_message and "backend_dead" in state.status

    # Generate again: a fresh backend starts; it does not know the scene, so the add-on
    # re-sends the saved PLY and retries without an error. Refine without weights -> coarse
    # strip plus the backend's explanation.
    settings.refine = True
    assert bpy.ops.videoscene.generate_video() == {"FINISHED"}
    run_until_idle()
    assert_no_error()
    assert state.refine_message
    assert len(strips(scene)) == 2


def test_one_click_generate_aligns_scene_with_path(addon, tmp_path):
    configure(tmp_path)
    scene = bpy.context.scene
    camera = keyframed_camera(scene, 1, 6)
    scene.videoscene.refine = False
    assert bpy.ops.videoscene.generate_video() == {"FINISHED"}
    run_until_idle()
    assert_no_error()
    empty = scene.videoscene.scene_empty
    assert empty is not None
    reference_0 = next(c for c in empty.children if c.name.startswith("VideoScene Reference 0"))
    scene.frame_set(1)
    placed = submodule("camera_path").rigid(np.array(reference_0.matrix_world))
    assert np.allclose(placed, np.array(camera.matrix_world), atol=1e-4)
    assert len(strips(scene)) == 1


def test_bad_input_reports_errors(addon, tmp_path):
    configure(tmp_path)
    settings = bpy.context.scene.videoscene
    state = bpy.context.window_manager.videoscene_state
    settings.image_a = str(tmp_path / "missing.png")
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.videoscene.build_scene()
    assert "does not exist" in state.error_message

    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"this is not a PNG file" * 10)
    settings.image_a = str(not_an_image)
    assert bpy.ops.videoscene.build_scene() == {"FINISHED"}
    run_until_idle()
    assert "bad_image" in state.status and state.error_hint


def make_tiny_video_weights(folder: Path) -> Path:
    """Tiny random video-model weights in the real checkpoint layout, made in a separate process
    (torch stays out of the bpy process), with the backend's Python."""
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]);"
        "from conftest import make_tiny_checkpoint; make_tiny_checkpoint(Path(sys.argv[1]))"
    )
    import subprocess

    backend_python = BACKEND.with_name("python" + Path(sys.executable).suffix)
    subprocess.run(
        [str(backend_python), "-c", script, str(folder), str(ROOT / "tests" / "video")],
        check=True,
        timeout=300,
    )
    return folder


def small_scene_empty(scene: bpy.types.Scene, folder: Path) -> bpy.types.Object:
    """A scene empty whose backend scene id is stale and whose PLY is a few hundred splats in
    front of keyframed_camera's path: Generate re-sends the PLY (load_scene) and renders it."""
    arrays = random_splat(300, seed=4)
    opacities = np.clip(arrays["opacities"] + 0.3, 0.05, 0.95)
    folder.mkdir(parents=True, exist_ok=True)
    ply = submodule("importers.ply")
    ply.write_splat_ply(  # the add-on's own 3DGS writer (PLY export)
        folder / "scene.ply",
        arrays["means"],
        {
            "f_dc": (arrays["colors"] - 0.5) / ply.SH_C0,
            "opacity_logit": np.log(opacities / (1.0 - opacities)),
            "log_scale": np.log(arrays["scales"] * 2.0),
            "rot": arrays["quats"],
        },
    )
    camera_path = submodule("camera_path")
    empty = bpy.data.objects.new("VideoScene Scene", None)
    scene.collection.objects.link(empty)
    empty.matrix_world = Matrix(camera_path.DEFAULT_SCENE_MATRIX.tolist())
    empty["videoscene_scene_id"] = "stale-scene"
    empty["videoscene_ply"] = str(folder / "scene.ply")
    scene.videoscene.scene_empty = empty
    return empty


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.backend_paths
def test_a_120_frame_1080p_path_streams_120_refined_frames_of_the_output_size(addon, tmp_path):
    configure(tmp_path)
    weights = make_tiny_video_weights(tmp_path / "checkpoints")
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.local_command += f" --checkpoints {weights}"
    scene = bpy.context.scene
    keyframed_camera(scene, 1, 120)
    small_scene_empty(scene, tmp_path / "scene")
    scene.videoscene.refine = True
    assert bpy.ops.videoscene.generate_video() == {"FINISHED"}

    # Drive the add-on; note how long the refined strip is while the job is still running.
    client_glue = submodule("client_glue")
    state = bpy.context.window_manager.videoscene_state
    lengths_while_running: set[int] = set()
    statuses: set[str] = set()
    windows_seen: set[tuple[int, int]] = set()

    def watch() -> None:
        statuses.add(state.status)
        streams = client_glue.SESSION.streams.values()
        windows_seen.update((st.window, st.windows) for st in streams if st.windows)
        refined = next((s for s in strips(scene) if s.name.endswith("refined")), None)
        if refined is not None and client_glue.SESSION.jobs:
            lengths_while_running.add(len(refined.elements))

    run_until_idle(on_step=watch)
    assert_no_error()
    assert not state.refine_message and state.status.startswith("Video ready")
    # The artist saw frames before the job finished, window by window ("window k of K").
    assert len(lengths_while_running - {0}) >= 2
    # Windows arrived one by one (which ones a step catches depends on the machine's speed).
    assert len(windows_seen) >= 2 and {total for _, total in windows_seen} == {15}, windows_seen
    assert any(re.search(r"window \d+/15", status) for status in statuses), statuses

    by_name = {strip.name: strip for strip in strips(scene)}
    refined = next(s for n, s in by_name.items() if n.endswith("refined"))
    coarse = next(s for n, s in by_name.items() if n.endswith("coarse"))
    assert not refined.mute and coarse.mute and refined.channel == coarse.channel + 1
    for strip in (refined, coarse):
        assert submodule("compat").strip_span(strip) == (1, 121)
        names = [element.filename for element in strip.elements]
        assert len(names) == 120 and len(set(names)) == 120  # one distinct image per frame
        folder = Path(bpy.path.abspath(strip.directory))
        assert all((folder / name).is_file() for name in names)
        assert {png_size(folder / name) for name in names} == {(96, 54)}  # 1920x1080 at 5 %
    coarse_folder = Path(bpy.path.abspath(coarse.directory))
    contents = {(coarse_folder / e.filename).read_bytes() for e in coarse.elements}
    assert len(contents) == 120  # every frame its own camera


def test_preview_renders_half_size_every_second_frame(addon, tmp_path):
    configure(tmp_path)
    scene = bpy.context.scene
    keyframed_camera(scene, 1, 20)
    small_scene_empty(scene, tmp_path / "scene")
    settings = scene.videoscene
    settings.refine = False
    settings.preview = True
    assert bpy.ops.videoscene.generate_video() == {"FINISHED"}
    run_until_idle()
    assert_no_error()
    (coarse,) = strips(scene)
    names = [element.filename for element in coarse.elements]
    assert (
        submodule("compat").strip_span(coarse)[1] == 21
        and len(names) == 20
        and len(set(names)) == 10
    )
    assert names[0] == names[1] != names[2]  # each image holds two frames
    assert png_size(Path(bpy.path.abspath(coarse.directory)) / names[0]) == (48, 27)

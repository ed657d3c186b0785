"""Ground truth for bench/fit_quality.py, rendered with Blender as a module (bpy).

Run in its own process (bpy and torch each bundle native libraries):
    python bench/fit_gt.py OUT_DIR FRAMES [SCENE ...]
Reuses bench/gt_scenes.py's scenes and helpers. For each scene it writes OUT_DIR/<scene>/:
a.png, b.png (the stereo pair at gt_scenes.SIZE), path/000000.png ... (FRAMES cameras along a
path that swings beyond the two photos: it runs from one baseline before photo A to one after
photo B and turns +-SWING_DEG left and right, so the path sees what neither photo saw),
held/0.png ... (cameras off the path: raised, lowered, turned between the path's poses), all
at PATH_SIZE, and cameras.json (every camera's Blender matrix_world, lens and sensor width).
No depth renders: the fit benchmark measures images only.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gt_scenes  # noqa: E402

PATH_SIZE = (320, 240)  # the path and held-out renders (Cycles on a shared 2-core machine)
PATH_SAMPLES = 8
SWING_DEG = 24.0
# (fraction along the path's line, height in baselines, turn in degrees): off the path.
HELD_OUT = ((0.25, 0.5, -9.0), (0.6, -0.4, 11.0), (0.9, 0.3, -16.0))


def _turned(location, target, degrees: float):
    """The target turned about the vertical axis through the camera."""
    offset = np.subtract(target, location)
    angle = math.radians(degrees)
    x = offset[0] * math.cos(angle) - offset[1] * math.sin(angle)
    y = offset[0] * math.sin(angle) + offset[1] * math.cos(angle)
    return tuple(np.add(location, (x, y, offset[2])))


def path_poses(views: dict, frames: int) -> list[tuple]:
    a, b = np.array(views["a"][0]), np.array(views["b"][0])
    ta, tb = np.array(views["a"][1]), np.array(views["b"][1])
    poses = []
    for i in range(frames):
        t = i / (frames - 1)
        along = -1.0 + 3.0 * t  # from one baseline before A to one after B
        location = a + along * (b - a)
        target = ta + min(max(along, 0.0), 1.0) * (tb - ta)
        turn = SWING_DEG * math.sin(2.0 * math.pi * t)
        poses.append((tuple(location), _turned(location, target, turn)))
    return poses


def held_out_poses(views: dict) -> list[tuple]:
    a, b = np.array(views["a"][0]), np.array(views["b"][0])
    ta, tb = np.array(views["a"][1]), np.array(views["b"][1])
    baseline = float(np.linalg.norm(b - a))
    poses = []
    for fraction, up, turn in HELD_OUT:
        along = -1.0 + 3.0 * fraction
        location = a + along * (b - a) + np.array([0.0, 0.0, up * baseline])
        target = ta + min(max(along, 0.0), 1.0) * (tb - ta)
        poses.append((tuple(location), _turned(location, target, turn)))
    return poses


def render_views(scene, cams: dict, out: Path, size, samples: int) -> dict:
    record = {}
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.cycles.samples = samples
    for name, cam in cams.items():
        scene.camera = cam
        bpy.context.view_layer.update()
        scene.render.filepath = str(out / f"{name}.png")
        bpy.ops.render.render(write_still=True)
        record[name] = {
            "matrix_world": [list(row) for row in cam.matrix_world],
            "lens_mm": cam.data.lens,
            "sensor_width_mm": cam.data.sensor_width,
            "resolution": list(size),
        }
    return record


def render_scene(name: str, out: Path, frames: int) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.use_denoising = True
    scene.cycles.max_bounces = 3
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.filter_width = 1.5
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_depth = "8"
    scene.view_settings.view_transform = "Standard"
    views = gt_scenes.SCENES[name]()
    out.mkdir(parents=True, exist_ok=True)
    photos = {view: gt_scenes.camera(view, *views[view]) for view in ("a", "b")}
    path = {
        f"path/{i:06d}": gt_scenes.camera(f"path{i}", *pose)
        for i, pose in enumerate(path_poses(views, frames))
    }
    held = {
        f"held/{i}": gt_scenes.camera(f"held{i}", *pose)
        for i, pose in enumerate(held_out_poses(views))
    }
    record = render_views(scene, photos, out, gt_scenes.SIZE, gt_scenes.SAMPLES)
    record.update(render_views(scene, path, out, PATH_SIZE, PATH_SAMPLES))
    record.update(render_views(scene, held, out, PATH_SIZE, PATH_SAMPLES))
    (out / "cameras.json").write_text(json.dumps(record, indent=1))


def main() -> None:
    out, frames = Path(sys.argv[1]), int(sys.argv[2])
    for name in sys.argv[3:] or ("indoor_room", "outdoor_sky", "close_object"):
        render_scene(name, out / name, frames)


if __name__ == "__main__":
    main()

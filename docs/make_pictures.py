"""Regenerates every picture in docs/pictures/ from the sample photos, with the product's own
commands and Blender. Run by hand (not in CI), from the clone, after `bash dev.sh demo`:

    .venv/bin/python docs/make_pictures.py                 # 5.5 min on 2 shared CPU cores
    .venv/bin/python docs/make_pictures.py --blender-python /path/to/bpy-venv/bin/python

1. `videoscene-backend run --fit` on samples/view_a.jpg and view_b.jpg at 320x240: the scene
   (scene.ply), the 49-frame flythrough (frames/) and the scene fitted to it (scene_fitted.ply).
   Without the video model's weights the frames are the coarse render, and the run says so.
2. This script again, in the Blender Python (`--blender-python`; bpy and torch never share a
   process): the scene imported by the add-on's own import code (as bench/viewport.py does),
   rendered headless in EEVEE and in Solid mode (Workbench) from the flythrough's middle camera,
   and the prior and the fitted scene from one camera off the path (Cycles, few samples).
3. Every picture written small (WebP; the flythrough an animated WebP), sizes checked against the
   budgets of issue 34: the animation at most 1 MB, all pictures together at most 3 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICTURES = ROOT / "docs" / "pictures"
SAMPLES = ROOT / "samples"
WIDTH, HEIGHT = 320, 240
ANIMATION_BUDGET = 1_000_000
TOTAL_BUDGET = 3_000_000
BLENDER_PYTHONS = (".venv-bpy5.3/bin/python", ".venv-bpy5.2/bin/python", ".venv/bin/python")


def default_blender_python() -> Path | None:
    """The newest Blender the clone has a venv for."""
    for relative in BLENDER_PYTHONS:
        if (ROOT / relative).is_file():
            return ROOT / relative
    return None


# --- step 2: inside Blender's Python ------------------------------------------------------------


def off_path(middle: dict, first: dict, second: dict) -> dict:
    """A camera off the path: stepped back and up from the flythrough's middle camera and turned
    past photo B's edge."""
    import numpy as np

    c2w = np.array(middle["c2w"], dtype=np.float64)
    start, end = (np.array(c["c2w"], dtype=np.float64)[:3, 3] for c in (first, second))
    baseline = float(np.linalg.norm(end - start))
    turn = math.radians(15.0)  # about the camera's own y (OpenCV: down), towards photo B's side
    side = np.sign(float((end - start) @ c2w[:3, 0])) or 1.0
    yaw = np.array(
        [
            [math.cos(turn), 0.0, side * math.sin(turn)],
            [0.0, 1.0, 0.0],
            [-side * math.sin(turn), 0.0, math.cos(turn)],
        ]
    )
    off = c2w.copy()
    off[:3, :3] = c2w[:3, :3] @ yaw
    # back along the view, up (OpenCV y points down) and sideways beyond photo B
    off[:3, 3] = c2w[:3, 3] + c2w[:3, :3] @ np.array([0.6 * side, -0.4, -1.5]) * baseline
    return {**middle, "c2w": off.tolist()}


def fresh_scene_with_splat(ply: Path, camera: dict):
    """An empty file, the splat as the add-on imports it, the camera, colours matched to the
    backend (the panel's Match the Backend button)."""
    import bpy

    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from blender_cameras import blender_camera

    from blender_addon import display
    from blender_addon.importers.ply import splat_arrays_from_ply
    from blender_addon.importers.splat import import_splat

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.world = bpy.data.worlds.new("Black")
    scene.world.color = (0.0, 0.0, 0.0)
    obj = import_splat(bpy.context, splat_arrays_from_ply(ply), None, scene.collection)
    blender_camera(camera)
    display.set_render_settings(scene)
    display.set_colours_match_backend(scene, True)
    return obj


def render_still(path: Path) -> float:
    import bpy

    scene = bpy.context.scene
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(path)
    start = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    return time.perf_counter() - start


def use_cycles(samples: int) -> None:
    import bpy

    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", samples, False


def blender_part(run: Path, out: Path, eevee_samples: int, cycles_samples: int) -> None:
    import bpy

    sys.path.insert(0, str(ROOT))
    from blender_addon import compat, display
    from blender_addon.display import solid

    sys.path.insert(0, str(ROOT / "bench"))  # blender_cameras.py
    from blender_cameras import halfway, reference_cameras

    first, second = reference_cameras(run / "scene.ply", WIDTH, HEIGHT)[:2]
    middle = halfway(first, second)
    off = off_path(middle, first, second)
    seconds = {"blender": bpy.app.version_string}

    obj = fresh_scene_with_splat(run / "scene.ply", middle)
    scene = bpy.context.scene
    seconds["native"] = getattr(obj.data, "type", "POINTS") == "GAUSSIAN_SPLAT"
    seconds["gaussians"] = len(obj.data.points) if obj.type == "POINTCLOUD" else None
    scene.render.engine = compat.eevee_engine()
    scene.eevee.taa_render_samples = eevee_samples
    seconds["eevee"] = render_still(out / "eevee.png")

    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light, scene.display.shading.color_type = "FLAT", "MATERIAL"
    display.set_colours_match_backend(scene, False)  # Solid mode: the Standard view
    companion = solid.companion(obj)
    seconds["solid_companion"] = companion is not None
    seconds["solid"] = render_still(out / "solid.png")

    for name, ply in (("prior", run / "scene.ply"), ("fitted", run / "scene_fitted.ply")):
        obj = fresh_scene_with_splat(ply, off)
        use_cycles(cycles_samples)
        seconds[f"{name}_gaussians"] = len(obj.data.points) if obj.type == "POINTCLOUD" else None
        seconds[name] = render_still(out / f"{name}_off_path.png")
    (out / "blender.json").write_text(json.dumps(seconds))


# --- steps 1 and 3: in the backend's Python -----------------------------------------------------


def run_backend(run: Path) -> None:
    program = Path(sys.executable).parent / "videoscene-backend"
    photos = ["--image-a", str(SAMPLES / "view_a.jpg"), "--image-b", str(SAMPLES / "view_b.jpg")]
    size = ["--width", str(WIDTH), "--height", str(HEIGHT)]
    command = [str(program), "run", *photos, "--out", str(run), *size, "--fit"]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def save_webp(image, name: str, quality: int = 80) -> Path:
    path = PICTURES / name
    image.save(path, "WEBP", quality=quality, method=6)
    return path


def photos_and_flythrough(run: Path) -> None:
    from PIL import Image

    for letter in ("a", "b"):
        photo = Image.open(SAMPLES / f"view_{letter}.jpg").convert("RGB")
        save_webp(photo.resize((WIDTH, HEIGHT), Image.LANCZOS), f"photo_{letter}.webp")
    frames = [Image.open(path).convert("RGB") for path in sorted((run / "frames").glob("*.png"))]
    if not frames:
        raise SystemExit(f"no frames in {run / 'frames'}")
    strip = Image.new("RGB", (WIDTH * 4, HEIGHT))
    for column, index in enumerate((0, len(frames) // 3, 2 * len(frames) // 3, len(frames) - 1)):
        strip.paste(frames[index].resize((WIDTH, HEIGHT)), (column * WIDTH, 0))
    save_webp(strip, "flythrough_frames.webp")
    small = [frame.resize((WIDTH, HEIGHT)) for frame in frames]
    for quality in (70, 55, 40, 25):
        path = PICTURES / "flythrough.webp"
        small[0].save(
            path,
            "WEBP",
            save_all=True,
            append_images=small[1:],
            duration=125,  # 8 fps, as video.mp4
            loop=0,
            quality=quality,
            method=6,
        )
        if path.stat().st_size <= ANIMATION_BUDGET:
            break


def blender_pictures(out: Path) -> None:
    from PIL import Image

    for name in ("eevee", "solid", "prior_off_path", "fitted_off_path"):
        save_webp(Image.open(out / f"{name}.png").convert("RGB"), f"{name}.webp")
    pair = Image.new("RGB", (WIDTH * 2, HEIGHT))
    pair.paste(Image.open(out / "prior_off_path.png").convert("RGB"), (0, 0))
    pair.paste(Image.open(out / "fitted_off_path.png").convert("RGB"), (WIDTH, 0))
    save_webp(pair, "prior_vs_fitted.webp")
    (PICTURES / "prior_off_path.webp").unlink()
    (PICTURES / "fitted_off_path.webp").unlink()


def check_sizes() -> None:
    sizes = {path.name: path.stat().st_size for path in sorted(PICTURES.iterdir())}
    for name, size in sizes.items():
        print(f"  {name:28s} {size / 1000:8.1f} kB")
    total = sum(sizes.values())
    print(f"  {'all':28s} {total / 1000:8.1f} kB")
    assert sizes.get("flythrough.webp", 0) <= ANIMATION_BUDGET, "flythrough.webp over 1 MB"
    assert total <= TOTAL_BUDGET, "docs/pictures/ over 3 MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--blender-python",
        type=Path,
        default=default_blender_python(),
        help="a Python with bpy and this clone's packages (default: the newest of "
        + ", ".join(BLENDER_PYTHONS)
        + ")",
    )
    parser.add_argument("--work", type=Path, default=None, help="keep the run and renders here")
    parser.add_argument("--eevee-samples", type=int, default=16)
    parser.add_argument("--cycles-samples", type=int, default=8)
    parser.add_argument("--blender-part", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.blender_part is not None:  # step 2, in Blender's Python
        blender_part(args.blender_part, args.work, args.eevee_samples, args.cycles_samples)
        return
    if args.blender_python is None:
        raise SystemExit("no Blender Python: run `bash dev.sh test` or pass --blender-python")
    work = args.work or Path(tempfile.mkdtemp(prefix="videoscene-pictures-"))
    run, renders = work / "run", work / "renders"
    renders.mkdir(parents=True, exist_ok=True)
    PICTURES.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if not (run / "scene_fitted.ply").is_file():
        run_backend(run)
    backend_s = time.perf_counter() - started
    if not (ROOT / "blender_addon" / "_vendor" / "videoscene_protocol").is_dir():
        subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--vendor-only"], check=True)
    photos_and_flythrough(run)
    command = [str(args.blender_python), __file__, "--blender-part", str(run), "--work"]
    command += [str(renders), "--eevee-samples", str(args.eevee_samples)]
    command += ["--cycles-samples", str(args.cycles_samples)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    blender_pictures(renders)
    check_sizes()
    figures = json.loads((renders / "blender.json").read_text())
    figures["backend_s"] = round(backend_s, 1)
    figures["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

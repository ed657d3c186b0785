"""Benchmark: the splat as Blender renders it vs the backend's render, at reference camera 0.

The sample scene (two photos -> the stereo prior, ~440k Gaussians) is imported by the add-on
and rendered by Blender at reference camera 0 (320x240), two ways in the same run:
- baseline "spheres": the display before the Gaussian material (each Gaussian an opaque emissive
  sphere of radius 1 sigma, its DC colour; restated below from the old importers/splat.py);
- "gaussians": the add-on's display (display/), colours matched to the backend (Raw view),
  sorted for the camera (quads); "cycles_spheres": the same in the dithered order (spheres).
Each is compared (PSNR) with photo A and with the backend's own render at that camera (CPU
torch renderer, run in the backend's Python: bpy and torch never share a process).
Engine: Cycles on the CPU at 1 sample (the Gaussian material is deterministic per ray; EEVEE's
software GL is slow: --eevee adds sorted renders, 1 sample, at camera 0 and at the flythrough's
middle camera; --dithered-samples N adds the viewport's dithered order at N samples).
Solid mode (Workbench) is rendered for both displays (the Solid companion's octahedra; the
old spheres' material colour). The viewport density control is measured on the
viewport depsgraph (points kept, seconds to evaluate); renders always keep every Gaussian.
On Blender 5.3+ the same run also renders Blender's own Gaussian splat (what the add-on makes
there; display/native.py) at the same camera: Cycles at --native-samples, colours matched
(Raw view, display-referred radiance) and Blender's own (Standard view), without the screen
blur, and Solid mode; --eevee adds EEVEE at --native-samples.

    .venv/bin/videoscene-backend run --image-a samples/view_a.jpg --image-b samples/view_b.jpg \\
        --out /tmp/display_demo --frames 2 --no-refine
    .venv/bin/python build_addon.py --vendor-only
    nice -n 10 .venv/bin/python bench/viewport.py --scene /tmp/display_demo --eevee

Prints one final JSON line {"bench": "viewport", "gaussians", "spheres_psnr_photo",
"spheres_psnr_backend", "gaussians_psnr_photo", "gaussians_psnr_backend",
"backend_psnr_photo", "spheres_s", "gaussians_s", "density" {k: [points, seconds]},
"native_*" (5.3+), ...}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix
from PIL import Image
from videoscene_protocol import cameras  # the same module the add-on vendors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from blender_cameras import blender_camera, halfway, reference_cameras  # noqa: E402

from blender_addon import compat, display  # noqa: E402
from blender_addon.display import modifier, solid  # noqa: E402
from blender_addon.importers.ply import splat_arrays_from_ply  # noqa: E402
from blender_addon.importers.splat import import_splat  # noqa: E402

WIDTH, HEIGHT = 320, 240


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def backend_render(scene_dir: Path, cameras_: list[dict], folder: Path) -> np.ndarray:
    (folder / "cameras.json").write_text(json.dumps(cameras_))
    script = ROOT / "tests" / "addon" / "backend_reference.py"
    python = ROOT / ".venv" / "bin" / "python"
    command = [str(python), str(script), str(scene_dir / "scene.ply")]
    subprocess.run(command + [str(folder / "cameras.json"), str(folder / "ref.npy")], check=True)
    return np.load(folder / "ref.npy")


def save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(path)


def photo_a(path: Path) -> np.ndarray:
    image = Image.open(path).convert("RGB").resize((WIDTH, HEIGHT), Image.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def spheres_baseline(obj: bpy.types.Object, arrays: dict) -> None:
    """The display before display/: opaque emissive spheres of radius 1 sigma (mean scale)."""
    material = bpy.data.materials.new("spheres")
    if material.node_tree is None:
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    attribute = nodes.new("ShaderNodeAttribute")
    attribute.attribute_name = "gs_color"  # linear light, as the old "color" was shown
    emission = nodes.new("ShaderNodeEmission")
    links.new(attribute.outputs["Color"], emission.inputs["Color"])
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(emission.outputs[0], output.inputs["Surface"])
    companion = solid.companion(obj)
    if companion is not None:  # the old display had no Solid companion
        bpy.data.objects.remove(companion)
    obj.modifiers.clear()
    obj.data.materials.clear()
    obj.data.materials.append(material)
    radius = obj.data.attributes["radius"]
    radius.data.foreach_set("value", arrays["scales"].mean(axis=1).astype(np.float32))
    obj.data.update_tag()


def render(folder: Path, name: str) -> tuple[np.ndarray, float]:
    scene = bpy.context.scene
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(folder / f"{name}.png")
    start = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    seconds = time.perf_counter() - start
    image = bpy.data.images.load(scene.render.filepath)
    pixels = np.array(image.pixels[:], dtype=np.float32).reshape(HEIGHT, WIDTH, 4)
    return pixels[::-1, :, :3], seconds


def density(obj: bpy.types.Object, every: int) -> tuple[int, float]:
    display.set_viewport_every(obj, every)
    start = time.perf_counter()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    count = len(obj.evaluated_get(depsgraph).data.points)
    return count, time.perf_counter() - start


def use_workbench(scene: bpy.types.Scene) -> None:
    """Solid mode's defaults (flat light, material colours) on a black world: Workbench
    renders without one on white in 4.2, on black in 5.0; the backend's background is black."""
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light, scene.display.shading.color_type = "FLAT", "MATERIAL"
    scene.world = bpy.data.worlds.get("Black") or bpy.data.worlds.new("Black")
    scene.world.color = (0.0, 0.0, 0.0)


def native_figures(folder: Path, arrays: dict, reference, photo, args) -> dict:
    """Blender's own Gaussian splat (5.3+) at the same camera: colours matched, Blender's own
    colours (Standard view), and as Blender's own PLY import shows it (no display modifier);
    Solid mode; EEVEE with --eevee."""
    scene = bpy.context.scene
    scene.render.engine, scene.world = "CYCLES", None
    obj = import_splat(bpy.context, arrays, None, scene.collection, native=True)
    figures = {"native_samples": args.native_samples}
    scene.cycles.samples = args.native_samples
    display.set_colours_match_backend(scene, True)
    image, figures["native_s"] = render(folder, "native")
    figures["native_psnr_photo"] = psnr(image, photo)
    figures["native_psnr_backend"] = psnr(image, reference)
    display.set_colours_match_backend(scene, False)  # Blender's own colours: Standard view
    image, _ = render(folder, "native_standard")
    figures["native_standard_psnr_backend"] = psnr(image, reference)
    shown = modifier.display_modifier(obj)
    shown.show_render = False  # no screen blur: what Blender's own PLY import shows
    image, _ = render(folder, "native_blender_import")
    figures["native_blender_import_psnr_backend"] = psnr(image, reference)
    shown.show_render = True
    display.set_colours_match_backend(scene, True)
    if args.eevee:
        scene.render.engine = compat.eevee_engine()
        scene.eevee.taa_render_samples = args.native_samples
        scene.render.filter_size = 0.0
        image, figures["native_eevee_s"] = render(folder, "native_eevee")
        figures["native_eevee_psnr_backend"] = psnr(image, reference)
    use_workbench(scene)
    image, figures["native_solid_s"] = render(folder, "native_solid")
    figures["native_solid_psnr_backend"] = psnr(image, reference)
    scene.render.engine, scene.world = "CYCLES", None
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scene", type=Path, default=Path("/tmp/display_demo"))
    parser.add_argument("--photo", type=Path, default=ROOT / "samples" / "view_a.jpg")
    parser.add_argument("--out", type=Path, default=None, help="keep the renders here")
    parser.add_argument("--eevee", action="store_true", help="also EEVEE sorted renders")
    parser.add_argument(
        "--dithered-samples", type=int, default=0, help="also EEVEE dithered at these samples"
    )
    parser.add_argument(
        "--native-samples", type=int, default=16, help="samples for Blender's own splat (5.3+)"
    )
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="viewport-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    camera, second = reference_cameras(args.scene / "scene.ply", WIDTH, HEIGHT)[:2]
    middle = halfway(camera, second)
    reference, reference_middle = backend_render(args.scene, [camera, middle], folder)
    photo = photo_a(args.photo)
    save_png(reference, folder / "backend.png")

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.world = None
    arrays = splat_arrays_from_ply(args.scene / "scene.ply")
    obj = import_splat(bpy.context, arrays, None, scene.collection, native=False)
    blender_camera(camera, "Camera 0")
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device, cycles.samples, cycles.use_denoising = "CPU", 1, False
    cycles.pixel_filter_type, cycles.filter_width = "BOX", 0.01
    display.set_render_settings(scene)
    display.set_colours_match_backend(scene, True)
    figures = {"bench": "viewport", "blender": bpy.app.version_string}
    figures["gaussians"] = len(arrays["means"])
    figures["engine"] = "CYCLES 1 sample, sorted"
    figures["density"] = {k: density(obj, k) for k in (1, 4, 16)}
    display.set_viewport_every(obj, 1)
    # Cycles, "Sorted for the camera" (quads parallel to the image plane, met in the backend's
    # order): the display for renders from the camera; then the dithered order (spheres).
    display.set_sorted(obj, True)
    image, figures["gaussians_s"] = render(folder, "gaussians")
    figures["gaussians_psnr_photo"] = psnr(image, photo)
    figures["gaussians_psnr_backend"] = psnr(image, reference)
    display.set_sorted(obj, False)
    image, figures["cycles_spheres_s"] = render(folder, "cycles_spheres")
    figures["cycles_spheres_psnr_backend"] = psnr(image, reference)
    if args.eevee:
        display.set_sorted(obj, True)
        scene.render.engine = compat.eevee_engine()
        scene.eevee.taa_render_samples = 1
        scene.render.filter_size = 0.0
        image, figures["eevee_sorted_s"] = render(folder, "eevee_sorted")
        figures["eevee_sorted_psnr_backend"] = psnr(image, reference)
        # Along the flythrough: its middle camera (the sort follows the scene camera).
        scene.camera.matrix_world = Matrix(
            cameras.opencv_to_blender_c2w(np.array(middle["c2w"])).tolist()
        )
        image, _ = render(folder, "eevee_sorted_middle")
        figures["eevee_sorted_middle_psnr_backend"] = psnr(image, reference_middle)
        save_png(reference_middle, folder / "backend_middle.png")
        scene.camera.matrix_world = Matrix(
            cameras.opencv_to_blender_c2w(np.array(camera["c2w"])).tolist()
        )
        display.set_sorted(obj, False)
    if args.dithered_samples:  # the viewport's order, Blender's default 1.5 px filter
        scene.render.engine = compat.eevee_engine()
        scene.eevee.taa_render_samples = args.dithered_samples
        scene.render.filter_size = 1.5
        image, figures["eevee_dithered_s"] = render(folder, "eevee_dithered")
        figures["eevee_dithered_samples"] = args.dithered_samples
        figures["eevee_dithered_psnr_backend"] = psnr(image, reference)
        scene.render.engine = "CYCLES"
    display.set_colours_match_backend(scene, False)  # the old display showed linear light
    # Solid mode (Workbench, flat light, material colour): the Solid companion's octahedra.
    use_workbench(scene)
    image, figures["solid_s"] = render(folder, "solid")
    figures["solid_psnr_backend"] = psnr(image, reference)
    scene.render.engine, scene.world = "CYCLES", None
    spheres_baseline(obj, arrays)
    image, figures["spheres_s"] = render(folder, "spheres")
    figures["spheres_psnr_photo"] = psnr(image, photo)
    figures["spheres_psnr_backend"] = psnr(image, reference)
    use_workbench(scene)  # the old display in Solid mode: its spheres' material colour
    image, _ = render(folder, "solid_spheres")
    figures["solid_spheres_psnr_backend"] = psnr(image, reference)
    scene.render.engine, scene.world = "CYCLES", None
    if args.eevee:
        scene.render.engine = compat.eevee_engine()
        image, figures["eevee_spheres_s"] = render(folder, "eevee_spheres")
        figures["eevee_spheres_psnr_backend"] = psnr(image, reference)
    if compat.native_gaussian_splats():
        bpy.data.objects.remove(obj)
        figures.update(native_figures(folder, arrays, reference, photo, args))
    figures["backend_psnr_photo"] = psnr(reference, photo)
    figures["gap_to_backend_db"] = figures["backend_psnr_photo"] - figures["gaussians_psnr_photo"]
    figures["renders"] = str(folder)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

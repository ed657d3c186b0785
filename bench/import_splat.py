"""Benchmark: importing Gaussians into Blender, ours vs the naive approach (runs in bpy).

Ours: blender_addon.importers.splat, by each of its paths this Blender has: "addon" (a mesh
filled by vertices.add + foreach_set from numpy, converted to a point cloud, with the add-on's
material, display modifier and Solid companion: what 4.5-5.2 show) and, on 5.3+, "native"
(Blender's own Gaussian splat: a point cloud resized and filled by foreach_set, with its display
modifier). Each is timed up to the evaluated depsgraph, so what the display needs really exists.
Naive baseline, as some public splat add-ons do: mesh.from_pydata with a list of tuples, then a
per-point Python loop for each attribute.

    .venv/bin/python build_addon.py --vendor-only
    .venv/bin/python bench/import_splat.py [--gaussians 524288]

Prints one final JSON line {"bench": "import_splat", "blender", "gaussians", "addon_s",
"native_s" (null before 5.3), "ours_s" (the path this Blender uses), "naive_s",
"ratio" (naive / ours)}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import bpy
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from blender_addon import compat  # noqa: E402
from blender_addon.importers.splat import import_splat  # noqa: E402


def random_splat(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(count, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return {
        "means": rng.normal(size=(count, 3)).astype(np.float32),
        "quats": quats,
        "scales": rng.uniform(0.001, 0.05, size=(count, 3)).astype(np.float32),
        "opacities": rng.uniform(0.0, 1.0, size=count).astype(np.float32),
        "colors": rng.uniform(0.0, 1.0, size=(count, 3)).astype(np.float32),
    }


def naive_import(arrays: dict[str, np.ndarray], collection) -> bpy.types.Object:
    """The per-point way: Python lists and loops over every Gaussian."""
    mesh = bpy.data.meshes.new("naive")
    mesh.from_pydata([tuple(p) for p in arrays["means"].tolist()], [], [])
    for name, kind in (
        ("color", "FLOAT_COLOR"),
        ("opacity", "FLOAT"),
        ("scale", "FLOAT_VECTOR"),
        ("rotation", "QUATERNION"),
    ):
        mesh.attributes.new(name, kind, "POINT")
    # Look attributes up after all are added: adding one invalidates earlier references.
    color, opacity = mesh.attributes["color"], mesh.attributes["opacity"]
    scale, rotation = mesh.attributes["scale"], mesh.attributes["rotation"]
    colors, opacities = arrays["colors"].tolist(), arrays["opacities"].tolist()
    scales, quats = arrays["scales"].tolist(), arrays["quats"].tolist()
    for i in range(len(colors)):
        color.data[i].color = (*colors[i], opacities[i])
        opacity.data[i].value = opacities[i]
        scale.data[i].vector = scales[i]
        rotation.data[i].value = quats[i]
    obj = bpy.data.objects.new("naive", mesh)
    collection.objects.link(obj)
    return obj


def time_ours(arrays: dict[str, np.ndarray], native: bool) -> float:
    collection = bpy.context.scene.collection
    start = time.perf_counter()
    obj = import_splat(bpy.context, arrays, None, collection, name="ours", native=native)
    bpy.context.evaluated_depsgraph_get()
    seconds = time.perf_counter() - start
    assert len(obj.data.attributes["position"].data) == len(arrays["means"])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gaussians", type=int, default=524_288)
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else None)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arrays = random_splat(args.gaussians)

    native = compat.native_gaussian_splats()
    native_s = time_ours(arrays, native=True) if native else None
    addon_s = time_ours(arrays, native=False)
    ours_s = native_s if native else addon_s

    start = time.perf_counter()
    naive = naive_import(arrays, bpy.context.scene.collection)
    naive_s = time.perf_counter() - start
    assert len(naive.data.vertices) == args.gaussians

    figures = {
        "bench": "import_splat",
        "blender": bpy.app.version_string,
        "gaussians": args.gaussians,
        "addon_s": round(addon_s, 4),
        "native_s": None if native_s is None else round(native_s, 4),
        "ours_s": round(ours_s, 4),
        "naive_s": round(naive_s, 4),
        "ratio": round(naive_s / ours_s, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Benchmark: fit_scene on ground truth, the fitted scene against the prior it started from.

bench/fit_gt.py renders (with bpy, in a subprocess; cached under out/bench/fit_quality/<hash>/)
three of bench/gt_scenes.py's scenes: the stereo pair at 640x480, a path of FRAMES cameras that
swings beyond the two photos (from one baseline before A to one after B, turning +-24 deg) and
three held-out cameras off the path, at 320x240. For each scene the stereo prior builds the
scene from the pair (its unit of length is the baseline, so the true cameras are expressed
relative to A and divided by the true baseline), then two fits run with the shipped CPU
settings (fit_job.CPU_DEFAULTS: the params' null on a CPU):
- `fitted`: the ground-truth path renders as the video (a perfect refined video);
- `control`: the prior's own coarse render along the path as the video (what runs without
  the video model): it must not lower the held-out PSNR by more than CONTROL_MAX_LOSS_DB.
Reported for prior, fitted and control, same run: PSNR at the path cameras and at the held-out
cameras (all pixels; black counts as wrong), black fraction (alpha < 0.5) along the path and
at the held-out cameras (which the fit's hole pass never looks at),
Gaussians, fit seconds and CPU seconds. `--eval-stride N` evaluates every N-th path camera
(all by default; rendering a few hundred thousand Gaussians takes seconds per view on a CPU);
`--photo-scale S` builds the prior from the photos resized by S (fewer Gaussians, cheaper
renders on a busy machine; the reference cameras scale with them).
One final JSON line with the figures, `targets` and `targets_met`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from videoscene_backend.fit import fit_inputs, fit_scene
from videoscene_backend.pipeline.fit_job import CPU_DEFAULTS, settings_from
from videoscene_backend.priors.stereo import StereoPrior
from videoscene_backend.render import render, to_uint8
from videoscene_protocol.cameras import blender_to_opencv_c2w
from videoscene_protocol.params import validate_params

HERE = Path(__file__).resolve().parent
GENERATOR = HERE / "fit_gt.py"
SCENES = ("indoor_room", "outdoor_sky", "close_object")
FRAMES = 49
CACHE = HERE.parent / "out" / "bench" / "fit_quality"
PICTURES = CACHE / "pictures"  # prior | fitted | ground truth per scene
TARGETS = {
    "heldout_gain_min_db": 3.0,
    "path_black_max": 0.005,
    "fit_seconds_max": 300.0,
    "control_max_loss_db": 0.3,
}


def scenes_dir(names: list[str]) -> Path:
    digest = hashlib.sha256(GENERATOR.read_bytes() + (HERE / "gt_scenes.py").read_bytes())
    folder = CACHE / digest.hexdigest()[:12]
    missing = [s for s in names if not (folder / s / "cameras.json").exists()]
    if missing:
        print(f"rendering {', '.join(missing)} with Blender (minutes) ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, str(GENERATOR), str(folder), str(FRAMES), *missing],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return folder


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    mse = np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def load(folder: Path) -> dict:
    cams = json.loads((folder / "cameras.json").read_text())
    a = blender_to_opencv_c2w(np.array(cams["a"]["matrix_world"]))
    b = blender_to_opencv_c2w(np.array(cams["b"]["matrix_world"]))
    baseline = np.linalg.norm((np.linalg.inv(a) @ b)[:3, 3])

    def in_prior_frame(name: str) -> np.ndarray:
        relative = np.linalg.inv(a) @ blender_to_opencv_c2w(np.array(cams[name]["matrix_world"]))
        relative[:3, 3] /= baseline
        return relative

    path = sorted(n for n in cams if n.startswith("path/"))
    held = sorted(n for n in cams if n.startswith("held/"))
    lens, sensor = cams["a"]["lens_mm"], cams["a"]["sensor_width_mm"]
    return {
        "photos": [read_rgb(folder / "a.png"), read_rgb(folder / "b.png")],
        "fov": float(np.degrees(2 * np.arctan(sensor / 2 / lens))),
        "path": (np.stack([in_prior_frame(n) for n in path]), [folder / f"{n}.png" for n in path]),
        "held": (np.stack([in_prior_frame(n) for n in held]), [folder / f"{n}.png" for n in held]),
        "size": tuple(cams[path[0]]["resolution"]),
    }


def intrinsics(scene, width: int, height: int, count: int) -> np.ndarray:
    camera = scene.reference_cameras[0]
    K = camera.K.copy()
    K[0] *= width / camera.width
    K[1] *= height / camera.height
    return np.repeat(K[None], count, axis=0)


@torch.no_grad()
def renders(scene, c2w: np.ndarray, K: np.ndarray, width: int, height: int):
    images, alphas = [], []
    for pose, k in zip(c2w, K, strict=True):
        out = render(
            scene,
            torch.from_numpy(pose).float(),
            torch.from_numpy(k).float(),
            width,
            height,
            backend="auto",  # the compiled renderer on the CPU: every path frame in seconds
            return_alpha=True,
        )
        images.append(to_uint8(out.images)[0])
        alphas.append(out.alpha[0].numpy())
    return images, alphas


def evaluate(scene, data: dict, stride: int) -> dict:
    width, height = data["size"]
    c2w, files = data["path"]
    chosen = list(range(0, len(files), stride))
    K = intrinsics(scene, width, height, len(files))
    images, alphas = renders(scene, c2w[chosen], K[chosen], width, height)
    held_c2w, held_files = data["held"]
    held_images, held_alphas = renders(scene, held_c2w, K[: len(held_files)], width, height)
    return {
        "psnr_path": round(
            float(
                np.mean(
                    [psnr(im, read_rgb(files[i])) for im, i in zip(images, chosen, strict=True)]
                )
            ),
            2,
        ),
        "psnr_heldout": round(
            float(
                np.mean(
                    [psnr(im, read_rgb(f)) for im, f in zip(held_images, held_files, strict=True)]
                )
            ),
            2,
        ),
        "path_black": round(float(np.mean([(a < 0.5).mean() for a in alphas])), 5),
        # the hole pass looks at every path camera; the held-out ones it never sees
        "heldout_black": round(float(np.mean([(a < 0.5).mean() for a in held_alphas])), 5),
        "gaussians": scene.num_gaussians,
    }


def fit(scene, data: dict, read_frame) -> tuple:
    settings = settings_from(validate_params("fit_scene", {}), "cpu")
    max_views = CPU_DEFAULTS["max_views"]
    width, height = data["size"]
    c2w, files = data["path"]
    K = intrinsics(scene, width, height, len(files))
    wall, cpu = time.perf_counter(), time.process_time()
    inputs = fit_inputs(
        read_frame, c2w, K, len(files), (width, height), scene, settings.downscale, max_views
    )
    fitted, report = fit_scene(
        scene,
        inputs.views,
        settings,
        lambda *_: None,
        lambda: None,
        inputs.coverage,
        inputs.holes,
    )
    seconds = {
        "fit_s": round(time.perf_counter() - wall, 1),
        "fit_cpu_s": round(time.process_time() - cpu, 1),
    }
    return fitted, {
        **seconds,
        "fit": report.to_json(),
        "settings": {
            "iterations": settings.iterations,
            "downscale": settings.downscale,
            "max_views": max_views,
            "refine_prior": settings.refine_prior,
        },
    }


def run_scene(folder: Path, stride: int, photo_scale: float) -> dict:
    data = load(folder)
    if photo_scale != 1.0:
        data["photos"] = [
            cv2.resize(p, None, fx=photo_scale, fy=photo_scale, interpolation=cv2.INTER_AREA)
            for p in data["photos"]
        ]
    scene = StereoPrior().build(data["photos"], data["fov"], lambda *_: None, lambda: None)
    width, height = data["size"]
    c2w, files = data["path"]
    K = intrinsics(scene, width, height, len(files))
    result = {"prior": evaluate(scene, data, stride)}
    fitted, info = fit(scene, data, lambda i: read_rgb(files[i]))
    result["fitted"] = {**evaluate(fitted, data, stride), **info}

    def coarse(i: int) -> np.ndarray:  # the prior's own render as the "video"
        return renders(scene, c2w[i : i + 1], K[i : i + 1], width, height)[0][0]

    control, info = fit(scene, data, coarse)
    result["control"] = {**evaluate(control, data, stride), **info}
    save_pictures(folder.name, scene, fitted, data)
    return result


PICTURE_PATH_FRAME = 4  # between the fit's chosen frames (0, 8, ...): seen only as a coverage view


def save_pictures(name: str, prior, fitted, data: dict) -> None:
    """prior | fitted | ground truth, side by side, at the first held-out camera and at a path
    camera the fit does not learn from; written to PICTURES."""
    width, height = data["size"]
    K = intrinsics(prior, width, height, 1)
    PICTURES.mkdir(parents=True, exist_ok=True)
    for label, (c2w, files), index in (
        ("held", data["held"], 0),
        ("path", data["path"], PICTURE_PATH_FRAME),
    ):
        row = [renders(s, c2w[index : index + 1], K, width, height)[0][0] for s in (prior, fitted)]
        row.append(read_rgb(files[index]))
        picture = cv2.cvtColor(np.concatenate(row, axis=1), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(PICTURES / f"{name}_{label}{index}.png"), picture)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval-stride", type=int, default=1)
    parser.add_argument("--scenes", nargs="*", choices=SCENES, default=list(SCENES))
    parser.add_argument("--photo-scale", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    folder = scenes_dir(args.scenes)
    results = {}
    for name in args.scenes:
        results[name] = run_scene(folder / name, args.eval_stride, args.photo_scale)
        print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    gains = [r["fitted"]["psnr_heldout"] - r["prior"]["psnr_heldout"] for r in results.values()]
    control = [r["control"]["psnr_heldout"] - r["prior"]["psnr_heldout"] for r in results.values()]
    met = {
        "heldout_gain": min(gains) >= TARGETS["heldout_gain_min_db"],
        "path_black": all(
            r["fitted"]["path_black"] <= TARGETS["path_black_max"] for r in results.values()
        ),
        "fit_seconds": all(
            r["fitted"]["fit_s"] <= TARGETS["fit_seconds_max"] for r in results.values()
        ),
        "control": min(control) >= -TARGETS["control_max_loss_db"],
    }
    print(
        json.dumps(
            {
                "bench": "fit_quality",
                "frames": FRAMES,
                "eval_stride": args.eval_stride,
                "photo_scale": args.photo_scale,
                "scenes": {
                    n: {k: {x: y for x, y in v.items() if x != "fit"} for k, v in r.items()}
                    for n, r in results.items()
                },
                "heldout_gain_db": [round(g, 2) for g in gains],
                "control_change_db": [round(c, 2) for c in control],
                "complete": len(results) == len(SCENES),
                "targets": TARGETS,
                "targets_met": met,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Benchmark: the embedded stereo prior against ground truth, before and after the dense rewrite.

Three scenes of different kinds (an indoor room, an outdoor street with sky, close objects on a
wooden table before a brick wall), and one stress case reported apart from the targets (the
same objects on a table of straight stripes before a wall of vertical lines: texture periodic
along the baseline), are rendered by bench/gt_scenes.py in a Blender subprocess (bpy and torch
must not share a process): two views for the prior and a third, held out, each with its camera
z-depth. The
renders are cached under out/bench/prior_quality/<hash of gt_scenes.py>/ (rendering takes
minutes on a small CPU). For each scene and each prior (`before` = bench/stereo_prior_before.py,
the old code kept only here; `after` = the backend's StereoPrior) it reports:

- coverage: the fraction of photo A's pixels the scene covers at A's camera (alpha > 0.5);
- depth_absrel / depth_delta125: the rendered depth at A against the true depth after median
  scaling (the prior's scale is arbitrary), on textured pixels (local grey-level standard
  deviation >= TEXTURE_STD) that the prior covers and that hit geometry (not sky);
- psnr_a / ssim_a: re-rendering photo A at its own camera (all pixels: black counts as wrong);
- psnr_heldout: rendering the third view at its true pose (in the prior's units: the true pose
  relative to A divided by the true baseline), all pixels;
- build_s: the median of BUILD_REPEATS builds.

Renders use the CPU renderer (the one every user without CUDA gets). One final JSON line with
the per-scene figures, their means and the targets of the issue.

Field of view (`exif_fov`): the scenes' photos written as a phone writes them (PNG with the
true focal length as FocalLengthIn35mmFilm, a whole number of mm, diagonal convention) and
built with no FOV given, through the backend's decoder (decode_photo, resolve_fovs), beside
the same photos with no metadata (the assumed 60 degrees; the scenes' lens gives 69.4). The
`after` rows above are given the true FOV, as a user who knows it would. `--fov-only` runs this
case alone (on a busy machine the full run takes tens of minutes: each CPU render is a minute).

`--baseline real`: the `before` rows are the prior as it was before the real-photo work (issue
#35; bench/stereo_prior_before_real/, the same baseline as bench/real_photos.py), so a change to
the prior for real photos is checked on these renders too. `--quick`: one build per prior, the
compiled CPU renderer (numba, the renderers' shared rules), the three scenes only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import ExifTags, Image
from videoscene_backend.pipeline.images import decode_photo
from videoscene_backend.pipeline.photo_meta import FULL_FRAME_DIAGONAL_MM, resolve_fovs
from videoscene_backend.priors.stereo import StereoPrior
from videoscene_backend.render import render
from videoscene_protocol.cameras import blender_to_opencv_c2w

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from stereo_prior_before import StereoPrior as StereoPriorBefore  # noqa: E402
from stereo_prior_before_real import StereoPrior as StereoPriorBeforeReal  # noqa: E402

# `before` rows: the pre-dense prior (default), or with --baseline real the prior as it was
# before issue #35 (bench/stereo_prior_before_real/, real_photos.py's in-run baseline).
BASELINES = {"dense": StereoPriorBefore, "real": StereoPriorBeforeReal}

GENERATOR = HERE / "gt_scenes.py"
SCENES = ("indoor_room", "outdoor_sky", "close_object")
STRESS_SCENES = ("striped_table",)  # reported, not held to the targets
CACHE = HERE.parent / "out" / "bench" / "prior_quality"
BUILD_REPEATS = 3
RENDERER = "torch"  # --quick: the compiled CPU renderer ("numba"), same rules, far faster
TEXTURE_STD = 4.0  # grey levels, 5x5 window
TARGETS = {
    "coverage_min": 0.98,
    "psnr_a_min_db": 30.0,
    "heldout_gain_min_db": 6.0,
    "depth_absrel_max": 0.05,
}


def scenes_dir(names: tuple[str, ...] = (*SCENES, *STRESS_SCENES)) -> Path:
    """The rendered scenes, rendered now if this version of the generator has none cached."""
    digest = hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:12]
    folder = CACHE / digest
    missing = [s for s in names if not (folder / s / "cameras.json").exists()]
    if missing:
        print(f"rendering {', '.join(missing)} with Blender (minutes) ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, str(GENERATOR), str(folder), *missing],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return folder


def load_scene(folder: Path) -> dict:
    cams = json.loads((folder / "cameras.json").read_text())
    views = {}
    for view in "abc":
        rgb = cv2.cvtColor(cv2.imread(str(folder / f"{view}.png")), cv2.COLOR_BGR2RGB)
        views[view] = {
            "rgb": rgb,
            "depth": np.load(folder / f"{view}_depth.npy"),
            "c2w": blender_to_opencv_c2w(np.array(cams[view]["matrix_world"])),
        }
    lens, sensor = cams["a"]["lens_mm"], cams["a"]["sensor_width_mm"]
    return {"views": views, "fov": float(np.degrees(2 * np.arctan(sensor / 2 / lens)))}


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    mse = np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) over the grey images."""
    x, y = (cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float64) for im in (image, reference))
    blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(value.mean())


def textured(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    mean = cv2.blur(grey, (5, 5))
    return np.sqrt(np.maximum(cv2.blur(grey * grey, (5, 5)) - mean * mean, 0)) >= TEXTURE_STD


def timed_builds(prior_class, images: list[np.ndarray], fov, repeats: int = BUILD_REPEATS):
    times, scene = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        scene = prior_class().build(images, fov, lambda *_: None, lambda: None)
        times.append(time.perf_counter() - start)
    return scene, statistics.median(times)


def evaluate(prior_class, data: dict, fov="true", images=None, repeats=BUILD_REPEATS) -> dict:
    """fov: "true" (the scene's, as a user gives it), or what the prior is given."""
    views = data["views"]
    a, b, c = views["a"], views["b"], views["c"]
    images = images or [a["rgb"], b["rgb"]]
    try:
        given = data["fov"] if fov == "true" else fov
        scene, seconds = timed_builds(prior_class, images, given, repeats)
    except Exception as error:  # a refusal is a result here, reported as such
        return {"error": f"{type(error).__name__}: {getattr(error, 'message', error)}"}
    camera = scene.reference_cameras[0]
    height, width = a["rgb"].shape[:2]
    relative = np.linalg.inv(a["c2w"]) @ c["c2w"]
    baseline = np.linalg.norm((np.linalg.inv(a["c2w"]) @ b["c2w"])[:3, 3])
    relative[:3, 3] /= baseline  # the prior's unit of length is the baseline
    poses = np.stack([np.eye(4), relative])
    with torch.no_grad():
        out = render(
            scene,
            torch.from_numpy(poses).float(),
            torch.from_numpy(np.stack([camera.K, camera.K])).float(),
            width,
            height,
            backend=RENDERER,
            return_depth=True,
            return_alpha=True,
        )
    frames = (out.images.clamp(0, 1) * 255).round().byte().numpy()
    alpha, depth = out.alpha[0].numpy(), out.depth[0].numpy()
    covered = alpha > 0.5
    truth = a["depth"]
    judged = covered & (truth > 0) & textured(a["rgb"]) & (depth > 0)
    figures = {
        "gaussians": scene.num_gaussians,
        "coverage": round(float(covered.mean()), 4),
        "psnr_a": round(psnr(frames[0], a["rgb"]), 2),
        "ssim_a": round(ssim(frames[0], a["rgb"]), 4),
        "psnr_heldout": round(psnr(frames[1], c["rgb"]), 2),
        "build_s": round(seconds, 3),
        "depth_judged_fraction": round(float(judged.mean()), 4),
    }
    if judged.sum() >= 100:
        scaled = depth[judged] * np.median(truth[judged] / depth[judged])
        ratio = np.maximum(scaled / truth[judged], truth[judged] / scaled)
        figures["depth_absrel"] = round(
            float(np.mean(np.abs(scaled - truth[judged]) / truth[judged])), 4
        )
        figures["depth_delta125"] = round(float(np.mean(ratio < 1.25)), 4)
    figures["meta"] = {k: v for k, v in scene.meta.items() if k not in ("prior",)}
    return figures


def phone_png(rgb: np.ndarray, fov_deg: float) -> bytes:
    """The photo as a phone stores it: its 35 mm equivalent focal length (whole mm) in EXIF."""
    height, width = rgb.shape[:2]
    half_width_mm = FULL_FRAME_DIAGONAL_MM * width / math.hypot(width, height) / 2
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = round(
        half_width_mm / math.tan(math.radians(fov_deg) / 2)
    )
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG", exif=exif.tobytes())
    return out.getvalue()


def compare_fov_sources(folder: Path, name: str) -> dict:
    """The EXIF field of view against the assumed one, no FOV given (module docstring)."""
    data = load_scene(folder / name)
    views = data["views"]
    photos = [decode_photo(phone_png(views[v]["rgb"], data["fov"]), v) for v in "ab"]
    fovs, sources = resolve_fovs(
        None, [p.exif_fov_deg for p in photos], [p.pixels.shape[:2] for p in photos]
    )
    images = [p.pixels for p in photos]
    result = {
        "exif": evaluate(StereoPrior, data, fovs, images, repeats=1),
        "assumed": evaluate(StereoPrior, data, None, repeats=1),
    }
    result["exif"]["fov_source"], result["exif"]["fov_deg"] = sources[0], round(fovs[0], 2)
    result["assumed"]["fov_source"] = "assumed"
    result["true_fov_deg"] = round(data["fov"], 2)
    print(json.dumps({f"{name} fov": result}), file=sys.stderr)
    return result


def mean_of(results: dict, prior: str, key: str) -> float | None:
    values = [r[prior][key] for r in results.values() if key in r[prior]]
    return round(float(np.mean(values)), 4) if len(values) == len(results) else None


def compare(folder: Path, name: str, baseline=StereoPriorBefore) -> dict:
    data = load_scene(folder / name)
    result = {
        "before": evaluate(baseline, data, repeats=BUILD_REPEATS),
        "after": evaluate(StereoPrior, data, repeats=BUILD_REPEATS),
    }
    print(json.dumps({name: result}), file=sys.stderr)
    return result


def without_meta(result: dict, rows=("before", "after")) -> dict:
    return {prior: {k: v for k, v in result[prior].items() if k != "meta"} for prior in rows}


def fov_report(folder: Path) -> dict:
    """The EXIF field of view beside the assumed one on each scene, their means and ratios."""
    fov_cases = {name: compare_fov_sources(folder, name) for name in SCENES}
    keys = ("coverage", "psnr_a", "psnr_heldout", "depth_absrel", "depth_delta125")
    means = {
        source: {key: mean_of(fov_cases, source, key) for key in keys}
        for source in ("exif", "assumed")
    }
    exif, assumed = means["exif"], means["assumed"]
    return {
        "scenes": {
            name: {"true_fov_deg": r["true_fov_deg"], **without_meta(r, ("exif", "assumed"))}
            for name, r in fov_cases.items()
        },
        "mean": means,
        "heldout_gain_db": round(exif["psnr_heldout"] - assumed["psnr_heldout"], 2)
        if exif["psnr_heldout"] and assumed["psnr_heldout"]
        else None,
        "ratio_depth_absrel": round(exif["depth_absrel"] / assumed["depth_absrel"], 3)
        if exif["depth_absrel"] and assumed["depth_absrel"]
        else None,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fov-only", action="store_true", help="only the field-of-view case")
    parser.add_argument(
        "--baseline",
        choices=sorted(BASELINES),
        default="dense",
        help="the `before` prior: the pre-dense one (dense) or the one before issue #35 (real)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one build per prior, the numba renderer, no stress scene and no FOV case",
    )
    return parser.parse_args()


def main() -> None:
    global BUILD_REPEATS, RENDERER
    args = parse_args()
    if args.fov_only:  # only the field-of-view case (its own baseline)
        report = fov_report(scenes_dir(SCENES))
        print(json.dumps({"bench": "prior_quality", "exif_fov": report}))
        return
    if args.quick:
        BUILD_REPEATS, RENDERER = 1, "numba"
    baseline = BASELINES[args.baseline]
    folder = scenes_dir(SCENES if args.quick else (*SCENES, *STRESS_SCENES))
    results = {name: compare(folder, name, baseline) for name in SCENES}
    stress = {} if args.quick else {name: compare(folder, name, baseline) for name in STRESS_SCENES}
    keys = ("coverage", "psnr_a", "ssim_a", "psnr_heldout", "depth_absrel", "depth_delta125")
    summary = {
        prior: {key: mean_of(results, prior, key) for key in (*keys, "build_s")}
        for prior in ("before", "after")
    }
    after = [r["after"] for r in results.values()]
    gains = [
        r["after"]["psnr_heldout"] - r["before"].get("psnr_heldout", 0.0)
        for r in results.values()
        if "psnr_heldout" in r["after"]
    ]
    met = {
        "coverage": all(r.get("coverage", 0) >= TARGETS["coverage_min"] for r in after),
        "psnr_a": all(r.get("psnr_a", 0) >= TARGETS["psnr_a_min_db"] for r in after),
        "heldout_gain": len(gains) == len(SCENES) and min(gains) >= TARGETS["heldout_gain_min_db"],
        "depth_absrel": all(r.get("depth_absrel", 1) <= TARGETS["depth_absrel_max"] for r in after),
    }
    print(
        json.dumps(
            {
                "bench": "prior_quality",
                "scenes": {name: without_meta(r) for name, r in results.items()},
                "stress": {name: without_meta(r) for name, r in stress.items()},
                "mean": summary,
                "heldout_gain_db": [round(g, 2) for g in gains],
                "baseline": args.baseline,
                "renderer": RENDERER,
                "exif_fov": None if args.quick else fov_report(folder),
                "ratio_build_s": round(
                    summary["after"]["build_s"] / summary["before"]["build_s"], 2
                )
                if summary["before"]["build_s"]
                else None,
                "targets": TARGETS,
                "targets_met": met,
            }
        )
    )


if __name__ == "__main__":
    main()

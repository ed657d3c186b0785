"""Benchmark: the embedded stereo prior's build time. The full 640x480 samples (median of REPEATS
builds, seconds per stage of the last) against the prior before the dense rewrite
(bench/stereo_prior_before.py) on the same pair in the same run; and a 512x512 centre crop.
One JSON line."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from videoscene_backend.priors.stereo import StereoPrior

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
REPEATS = 5
sys.path.insert(0, str(Path(__file__).resolve().parent))
from stereo_prior_before import StereoPrior as StereoPriorBefore  # noqa: E402


def load(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)


def square_512(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    crop = image[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    return cv2.resize(crop, (512, 512), interpolation=cv2.INTER_AREA)


def timed_build(images: list[np.ndarray], fov: float, prior_class=StereoPrior) -> dict:
    marks: list[tuple[str, float]] = []

    def progress(stage: str, fraction: float, message: str) -> None:
        marks.append((f"{stage}:{message or fraction}", time.perf_counter()))

    start = time.perf_counter()
    scene = prior_class().build(images, fov, progress, lambda: None)
    total = time.perf_counter() - start
    # Each progress mark starts a step; a step lasts until the next mark.
    stages, label, previous = {}, "decode", start
    for next_label, moment in marks:
        stages[label] = round(stages.get(label, 0.0) + moment - previous, 3)
        label, previous = next_label.split(":")[1].split(";")[0], moment
    stages[label] = round(start + total - previous, 3)
    return {"total_s": round(total, 3), "stages_s": stages, "gaussians": scene.num_gaussians}


def main() -> None:
    a, b = load("view_a.jpg"), load("view_b.jpg")
    fov_full = 2 * np.degrees(np.arctan(18 / 28))  # the samples' 28 mm lens on a 36 mm sensor
    fov_square = 2 * np.degrees(np.arctan(18 / 28 * 480 / 640))  # the crop keeps 480 of 640 px
    square = timed_build([square_512(a), square_512(b)], fov_square)
    runs = {"after": [], "before": []}
    for _ in range(REPEATS):  # interleaved, so that load from elsewhere hits both alike
        runs["after"].append(timed_build([a, b], fov_full))
        runs["before"].append(timed_build([a, b], fov_full, StereoPriorBefore))
    median = {k: statistics.median(r["total_s"] for r in v) for k, v in runs.items()}
    print(
        json.dumps(
            {
                "bench": "prior",
                "prior": "stereo",
                "full_640x480": {
                    "median_s": round(median["after"], 3),
                    "all_s": [r["total_s"] for r in runs["after"]],
                    "stages_s": runs["after"][-1]["stages_s"],
                    "gaussians": runs["after"][-1]["gaussians"],
                },
                "before_full_640x480": {
                    "median_s": round(median["before"], 3),
                    "all_s": [r["total_s"] for r in runs["before"]],
                    "gaussians": runs["before"][-1]["gaussians"],
                },
                "square_512": square,
                "ratio_after_vs_before": round(median["after"] / median["before"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()

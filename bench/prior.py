"""Benchmark: the embedded stereo prior on a 512x512 pair (the samples, centre-cropped), seconds
per stage, against the same prior on the full 640x480 samples in the same run. One JSON line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
from videoscene_backend.priors.stereo import StereoPrior

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def load(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)


def square_512(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    crop = image[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    return cv2.resize(crop, (512, 512), interpolation=cv2.INTER_AREA)


def timed_build(images: list[np.ndarray], fov: float) -> dict:
    marks: list[tuple[str, float]] = []

    def progress(stage: str, fraction: float, message: str) -> None:
        marks.append((f"{stage}:{message or fraction}", time.perf_counter()))

    start = time.perf_counter()
    scene = StereoPrior().build(images, fov, progress, lambda: None)
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
    full = timed_build([a, b], fov_full)
    print(
        json.dumps(
            {
                "bench": "prior",
                "prior": "stereo",
                "square_512": square,
                "full_640x480": full,
                "ratio": round(full["total_s"] / square["total_s"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()

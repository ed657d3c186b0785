"""Benchmark: the NoPoSplat prior at 512x512 with random weights (no checkpoint needed), against
the embedded stereo prior on the same 512x512 sample pair in the same run. One JSON line.

Figures: the network's forward time (median of --repeats after a warm-up) and peak memory, PnP
on 262,144 per-pixel points of a known camera, one photometric refinement step (gsplat on CUDA,
the torch renderer at 128 px on a 4x sparser pixel grid elsewhere, as the
prior runs it), and the stereo prior's whole
build. ratio = stereo prior seconds / NoPoSplat seconds (forward + PnP + the prior's default
refinement steps); above 1 means NoPoSplat is faster.

    python bench/noposplat.py                 # real size on CUDA if present, else the CPU
    python bench/noposplat.py --dtype bf16    # CUDA: the network under bf16 autocast
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from videoscene_backend.devices import default_device
from videoscene_backend.priors.noposplat.network import REAL_CONFIG, NoPoSplatNet
from videoscene_backend.priors.noposplat.pnp import pose_from_points, refine_pose
from videoscene_backend.priors.noposplat.prior import (
    DEFAULT_FOCAL,
    default_refine_steps,
    normalized_intrinsics,
    pixel_grid_subsample,
    pixel_intrinsics,
    preprocess,
    refine_resolution,
    scene_from_prediction,
)
from videoscene_backend.priors.stereo import StereoPrior

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SIZE = REAL_CONFIG.image_size


def _photo(name: str) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _wavy_points(c2w: np.ndarray, K: np.ndarray) -> np.ndarray:
    """One point per pixel of a wavy surface 2-3 units in front of the camera c2w."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    depth = 2.5 + 0.4 * np.sin(cols / SIZE * 6) * np.cos(rows / SIZE * 4)
    rays = np.stack(
        [(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(cols)], -1
    )
    return (rays * depth[..., None]) @ c2w[:3, :3].T + c2w[:3, 3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    device = default_device()
    torch.manual_seed(0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    network = NoPoSplatNet(REAL_CONFIG).eval().requires_grad_(False).to(device)
    params = sum(p.numel() for p in network.parameters())

    a, b = _photo("view_a.jpg"), _photo("view_b.jpg")
    (input_a, square_a), (input_b, square_b) = preprocess(a, SIZE), preprocess(b, SIZE)
    images = torch.cat([input_a, input_b])[None].to(device)
    K_norm = normalized_intrinsics(DEFAULT_FOCAL)
    K = pixel_intrinsics(K_norm, SIZE)
    K_norm = K_norm.expand(1, 2, 3, 3).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.repeats + 1):  # the first is a warm-up
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad(), autocast:
            raw = network(images, K_norm)
        _sync(device)
        times.append(time.perf_counter() - start)
    forward_s = statistics.median(times[1:])
    if device.type == "cuda":
        peak_gb = torch.cuda.max_memory_allocated() / 2**30
    else:  # ru_maxrss is in KiB on Linux: the process's growth while building and running it
        peak_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 2**20

    truth = np.eye(4)
    truth[:3, 3] = [0.3, 0.0, 0.0]
    points = _wavy_points(truth, K)
    start = time.perf_counter()
    c2w, _ = pose_from_points(points, np.ones((SIZE, SIZE), bool), K)
    pnp_s = time.perf_counter() - start

    # Refinement on the predicted Gaussians, placed on the known surfaces (random weights
    # predict no geometry, and the renderer's cost depends on where Gaussians land).
    means = np.concatenate([_wavy_points(np.eye(4), K), points]).reshape(-1, 3)
    scene = scene_from_prediction(raw, REAL_CONFIG.sh_degree)
    scene.means = torch.tensor(means, dtype=torch.float32)
    refine_size = refine_resolution(device, SIZE)
    scene = pixel_grid_subsample(scene, SIZE, SIZE // refine_size)  # as the prior does
    refine_steps = default_refine_steps(device)
    refine_pose(scene, c2w, K, square_b, 1, refine_size, lambda: None, device)  # warm-up
    _sync(device)
    start = time.perf_counter()
    refine_pose(scene, c2w, K, square_b, 3, refine_size, lambda: None, device)
    _sync(device)
    refine_step_s = (time.perf_counter() - start) / 3

    start = time.perf_counter()
    fov_square = 2 * np.degrees(np.arctan(18 / 28 * 480 / 640))  # the samples' lens, cropped
    StereoPrior().build([square_a, square_b], fov_square, lambda *_: None, lambda: None)
    stereo_s = time.perf_counter() - start

    noposplat_s = forward_s + pnp_s + refine_steps * refine_step_s
    print(
        json.dumps(
            {
                "bench": "noposplat",
                "device": torch.cuda.get_device_name() if device.type == "cuda" else device.type,
                "size": SIZE,
                "dtype": args.dtype,
                "params": params,
                "gaussians": 2 * SIZE * SIZE,
                "refine_gaussians": scene.num_gaussians,
                "forward_s": round(forward_s, 3),
                "peak_mem_gb": round(peak_gb, 2),
                "pnp_s": round(pnp_s, 3),
                "refine_step_s": round(refine_step_s, 4),
                "refine_steps": refine_steps,
                "refine_size": refine_size,
                "noposplat_s": round(noposplat_s, 3),
                "stereo_prior_s": round(stereo_s, 3),
                "ratio": round(stereo_s / noposplat_s, 4),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Benchmark: splat rendering at 480x720.

CPU: the tiled pure-torch renderer at 131,072 and 524,288 Gaussians (frames per second), and,
as the in-run baseline, a dense (untiled) composite of the same kind at reduced size against the
tiled renderer at that size. CUDA: gsplat at both sizes and its largest pixel difference from the
torch renderer. One final JSON line.
"""

from __future__ import annotations

import json
import time

import torch
from videoscene_backend.render import render
from videoscene_backend.scene.gaussians import GaussianScene

WIDTH, HEIGHT = 720, 480
K = torch.tensor([[600.0, 0, 360], [0, 600, 240], [0, 0, 1]])


def make_scene(n: int, device: str = "cpu") -> GaussianScene:
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.5, 1.0, 0.5]) + torch.tensor(
        [0, 0, 4.0]
    )
    scene = GaussianScene(
        means,
        torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        torch.rand(n, 3, generator=g) * 0.02 + 0.004,
        torch.rand(n, generator=g) * 0.9 + 0.05,
        torch.randn(n, 4, 3, generator=g) * 0.3,
    )
    return scene.to(device)


def fps(
    scene: GaussianScene,
    backend: str,
    frames: int,
    width: int = WIDTH,
    height: int = HEIGHT,
    k: torch.Tensor = K,
) -> tuple[float, torch.Tensor]:
    poses = torch.eye(4, device=scene.means.device).repeat(frames, 1, 1)
    poses[:, 0, 3] = torch.linspace(-0.2, 0.2, frames)
    with torch.no_grad():
        render(scene, poses[:1], k[None].to(poses), width, height, backend=backend)  # warm-up
        if scene.means.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = render(
            scene, poses, k[None].repeat(frames, 1, 1).to(poses), width, height, backend=backend
        )
        if scene.means.is_cuda:
            torch.cuda.synchronize()
    return frames / (time.perf_counter() - start), out.images


def dense_fps(scene: GaussianScene, width: int, height: int, k: torch.Tensor) -> float:
    """Untiled baseline: every visible Gaussian against every pixel in one composite."""
    from gsplat.cuda._torch_impl import (
        _fully_fused_projection,
        _quat_scale_to_covar_preci,
        _spherical_harmonics,
    )
    from videoscene_backend.render.torch_backend import _composite

    start = time.perf_counter()
    with torch.no_grad():
        covars, _ = _quat_scale_to_covar_preci(scene.quats, scene.scales, compute_preci=False)
        radii, means2d, depths, conics, _ = _fully_fused_projection(
            scene.means, covars, torch.eye(4)[None], k[None], width, height
        )
        visible = torch.nonzero((radii[0] > 0).all(-1)).squeeze(1)
        visible = visible[torch.argsort(depths[0, visible])]
        colours = torch.clamp_min(
            _spherical_harmonics(1, scene.means[visible], scene.sh[visible]) + 0.5, 0
        )
        feature = torch.cat([colours, depths[0, visible, None]], -1)
        ys, xs = torch.meshgrid(
            torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij"
        )
        pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
        for chunk in pixels.split(4096):
            _composite(
                chunk, means2d[0, visible], conics[0, visible], scene.opacities[visible], feature
            )
    return 1.0 / (time.perf_counter() - start)


def main() -> None:
    result: dict = {"bench": "render", "size": f"{WIDTH}x{HEIGHT}", "device": "cpu"}
    for n in (131_072, 524_288):
        result[f"torch_fps_{n}"] = round(fps(make_scene(n), "torch", 2)[0], 3)
    small_k = K * torch.tensor([[0.25], [0.25], [1.0]])
    small = make_scene(4096)
    tiled = fps(small, "torch", 3, 180, 120, small_k)[0]
    dense = dense_fps(small, 180, 120, small_k)
    result.update(
        {
            "baseline": "dense untiled composite, 4096 Gaussians at 180x120",
            "tiled_fps_small": round(tiled, 2),
            "dense_fps_small": round(dense, 2),
            "ratio": round(tiled / dense, 2),
        }
    )
    if torch.cuda.is_available():
        result["device"] = torch.cuda.get_device_name()
        for n in (131_072, 524_288):
            scene = make_scene(n, "cuda")
            gsplat_fps, fast = fps(scene, "gsplat", 49)
            _, slow = fps(scene, "torch", 2)
            result[f"gsplat_fps_{n}"] = round(gsplat_fps, 1)
            result[f"max_pixel_diff_{n}"] = round(float((fast[:2] - slow).abs().max()) * 255, 2)
        result["ratio"] = round(result["gsplat_fps_524288"] / result["torch_fps_524288"], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Splat rendering: gsplat on CUDA, a matching pure-torch renderer elsewhere.

out = render(scene, c2w, K, width, height)       # images (N, H, W, 3) float in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..scene.gaussians import GaussianScene


@dataclass
class RenderOutput:
    images: torch.Tensor  # (N, H, W, 3) float32 in [0, 1]
    depth: torch.Tensor | None = None  # (N, H, W) expected depth (0 where empty)
    alpha: torch.Tensor | None = None  # (N, H, W)
    # With return_info: what gsplat's densification strategies read (gsplat.strategy):
    # "means2d" (N, G, 2) projected centres in the autograd graph, "radii" (N, G, 2) pixel
    # radii (0 where culled), "gaussian_ids" (None: not packed),
    # "width", "height", "n_cameras".
    info: dict | None = None


def render(
    scene: GaussianScene,
    c2w: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    *,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    near: float = 0.01,
    far: float = 1e10,
    backend: str = "auto",
    return_depth: bool = False,
    return_alpha: bool = False,
    return_info: bool = False,
    sh_degree: int | None = None,
) -> RenderOutput:
    """Render N cameras (OpenCV c2w in the splat frame, pixel K at width x height)."""
    if backend == "auto":
        backend = "gsplat" if scene.means.is_cuda else "torch"
    if backend == "gsplat":
        from .gsplat_backend import render_gsplat as renderer
    elif backend == "torch":
        from .torch_backend import render_torch as renderer
    else:
        raise ValueError(f"unknown render backend {backend!r} (use auto, gsplat or torch)")
    device, dtype = scene.means.device, scene.means.dtype
    c2w = torch.as_tensor(c2w, device=device).to(dtype)
    K = torch.as_tensor(K, device=device).to(dtype)
    if c2w.ndim == 2:
        c2w, K = c2w[None], K[None]
    degree = scene.sh_degree if sh_degree is None else min(sh_degree, scene.sh_degree)
    bg = torch.tensor(background, device=device, dtype=dtype)
    out = renderer(
        scene,
        c2w,
        K,
        width,
        height,
        bg,
        near,
        far,
        degree,
        return_depth,
        return_alpha,
        want_info=return_info,
    )
    if out.info is not None:
        out.info.update(width=width, height=height, n_cameras=len(c2w))
    return out


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

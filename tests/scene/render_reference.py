"""Test scenes and a dense reference renderer built on gsplat's own pure-torch projection and SH
functions: every visible Gaussian over every pixel, one Gaussian at a time, gsplat's rules."""

from __future__ import annotations

import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)
from videoscene_backend.render import torch_backend
from videoscene_backend.scene.gaussians import GaussianScene

K = torch.tensor([[80.0, 0, 40], [0, 80, 30], [0, 0, 1]])
W, H = 80, 60


def scene(n: int = 300, seed: int = 0, degree: int = 2) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.8, 0.6, 0.3]) + torch.tensor(
        [0, 0, 3.0]
    )
    return GaussianScene(
        means=means,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        scales=torch.rand(n, 3, generator=g) * 0.08 + 0.01,
        opacities=torch.rand(n, generator=g) * 0.9 + 0.05,
        sh=torch.randn(n, (degree + 1) ** 2, 3, generator=g) * 0.4,
    )


def dense_reference(
    s: GaussianScene,
    c2w: torch.Tensor,
    background: torch.Tensor,
    k: torch.Tensor = K,
    width: int = W,
    height: int = H,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image (H, W, 3), alpha (H, W), expected depth (H, W), 0 where empty), computed in
    `dtype` (float64 takes gsplat's float32 rounding out of a comparison)."""
    means, quats, scales = s.means.to(dtype), s.quats.to(dtype), s.scales.to(dtype)
    opacities, sh, c2w = s.opacities.to(dtype), s.sh.to(dtype), c2w.to(dtype)
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        means,
        covars,
        torch.linalg.inv(c2w)[None],
        k.to(dtype)[None],
        width,
        height,
        eps2d=torch_backend.SCREEN_BLUR_PX2,
    )
    visible = (radii[0] > 0).all(-1)
    order = torch.argsort(depths[0], stable=True)  # gsplat's radix sort: ties by index
    order = order[visible[order]]
    colours = torch.clamp_min(_spherical_harmonics(s.sh_degree, means - c2w[:3, 3], sh) + 0.5, 0)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype) + 0.5,
        torch.arange(width, dtype=dtype) + 0.5,
        indexing="ij",
    )
    T = torch.ones(height, width, dtype=dtype)
    done = torch.zeros(height, width, dtype=torch.bool)
    image = torch.zeros(height, width, 3, dtype=dtype)
    depth_sum = torch.zeros(height, width, dtype=dtype)
    for i in order.tolist():
        dx, dy = xs - means2d[0, i, 0], ys - means2d[0, i, 1]
        a, b, c = conics[0, i]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp_max(opacities[i] * torch.exp(-sigma), torch_backend.ALPHA_MAX)
        use = (sigma >= 0) & (alpha >= torch_backend.ALPHA_MIN) & ~done
        next_T = T * (1 - alpha)
        stop = use & (next_T <= torch_backend.TRANSMITTANCE_MIN)
        done |= stop
        use &= ~stop
        weight = torch.where(use, alpha * T, 0)
        image += weight[..., None] * colours[i]
        depth_sum += weight * depths[0, i]
        T = torch.where(use, next_T, T)
    alpha = 1 - T
    depth = torch.where(alpha > 0, depth_sum / alpha.clamp_min(1e-10), 0)
    return image + T[..., None] * background.to(dtype), alpha, depth

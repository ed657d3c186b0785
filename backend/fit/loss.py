"""The photometric loss: (1 - w) * L1 + w * (1 - SSIM), as 3DGS and gsplat's trainer use.

SSIM is written here (a Gaussian-window convolution, Wang et al. 2004) because torch has none
and gsplat's trainer takes it from fused-ssim, a CUDA-only package.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
C1, C2 = 0.01**2, 0.03**2


def _window(channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(WINDOW, device=device, dtype=dtype) - WINDOW // 2
    g = torch.exp(-(x * x) / (2 * SIGMA * SIGMA))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, WINDOW, WINDOW).contiguous()


def ssim(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two (H, W, 3) images in [0, 1] (valid windows only)."""
    x, y = (t.permute(2, 0, 1)[None] for t in (image, reference))
    window = _window(3, x.device, x.dtype)
    blur = lambda t: F.conv2d(t, window, groups=3)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy = blur(x * x) - mx * mx, blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    value = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
    return value.mean()


def photometric_loss(image: torch.Tensor, reference: torch.Tensor, ssim_weight: float):
    """(loss, L1) of a render against its frame."""
    l1 = (image - reference).abs().mean()
    if min(image.shape[:2]) < WINDOW:
        return l1, l1
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim(image, reference)), l1


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float(((image.detach() - reference) ** 2).mean())
    return 10.0 * float(torch.log10(torch.tensor(1.0 / max(mse, 1e-12))))

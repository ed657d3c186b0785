"""The pure-torch renderer against a dense per-Gaussian reference built on gsplat's own
pure-torch projection and SH functions; outputs, background, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)
from videoscene_backend.render import render, to_uint8
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


def dense_reference(s: GaussianScene, c2w: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Every visible Gaussian over every pixel, one Gaussian at a time, gsplat's rules."""
    covars, _ = _quat_scale_to_covar_preci(s.quats, s.scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        s.means, covars, torch.linalg.inv(c2w)[None], K[None], W, H
    )
    visible = (radii[0] > 0).all(-1)
    order = torch.argsort(depths[0])
    order = order[visible[order]]
    colours = torch.clamp_min(
        _spherical_harmonics(s.sh_degree, s.means - c2w[:3, 3], s.sh) + 0.5, 0
    )
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    T = torch.ones(H, W)
    done = torch.zeros(H, W, dtype=torch.bool)
    image = torch.zeros(H, W, 3)
    for i in order.tolist():
        dx, dy = xs - means2d[0, i, 0], ys - means2d[0, i, 1]
        a, b, c = conics[0, i]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp_max(s.opacities[i] * torch.exp(-sigma), 0.999)
        use = (sigma >= 0) & (alpha >= 1 / 255) & ~done
        next_T = T * (1 - alpha)
        stop = use & (next_T <= 1e-4)
        done |= stop
        use &= ~stop
        image += torch.where(use[..., None], (alpha * T)[..., None] * colours[i], 0)
        T = torch.where(use, next_T, T)
    return image + T[..., None] * background


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_renderer_matches_the_dense_reference(seed) -> None:
    s = scene(seed=seed)
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.1, -0.05, 0.0])
    background = torch.tensor([0.2, 0.3, 0.4])
    out = render(
        s,
        c2w[None],
        K[None],
        W,
        H,
        background=(0.2, 0.3, 0.4),
        backend="torch",
        return_alpha=True,
        return_depth=True,
    )
    reference = dense_reference(s, c2w, background)
    assert (out.images[0] - reference).abs().max() < 2 / 255
    assert out.alpha.shape == (1, H, W) and out.depth.shape == (1, H, W)
    covered = out.alpha[0] > 0.5
    assert covered.any() and ((out.depth[0][covered] > 1.5) & (out.depth[0][covered] < 5)).all()


def test_empty_view_shows_the_background() -> None:
    s = scene()
    c2w = torch.eye(4)
    c2w[2, 3] = 10.0  # behind every Gaussian, looking away
    out = render(
        s, c2w[None], K[None], W, H, background=(1.0, 0.5, 0.0), backend="torch", return_alpha=True
    )
    torch.testing.assert_close(out.images[0], torch.tensor([1.0, 0.5, 0.0]).expand(H, W, 3))
    assert out.alpha.max() == 0


def test_a_batch_renders_each_camera_and_converts_to_uint8() -> None:
    s = scene(n=100)
    poses = torch.eye(4).repeat(3, 1, 1)
    poses[1, 0, 3] = 0.3
    out = render(s, poses, K.repeat(3, 1, 1), W, H, backend="torch")
    frames = to_uint8(out.images)
    assert frames.shape == (3, H, W, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], frames[2])
    assert not np.array_equal(frames[0], frames[1])


def test_gradients_reach_the_camera_pose_and_the_gaussians() -> None:
    s = scene(n=150)
    s.means.requires_grad_(True)
    offset = torch.zeros(3, requires_grad=True)
    c2w = torch.eye(4).clone()
    c2w = c2w + torch.nn.functional.pad(offset[:, None], (3, 0, 0, 1))
    out = render(s, c2w[None], K[None], W, H, backend="torch")
    out.images.mean().backward()
    assert offset.grad is not None and offset.grad.abs().sum() > 0
    assert s.means.grad.abs().sum() > 0


@pytest.mark.cuda
def test_gsplat_matches_the_torch_renderer() -> None:
    s = scene(n=2000).to("cuda")
    c2w = torch.eye(4, device="cuda")[None]
    fast = render(s, c2w, K.cuda()[None], W, H, backend="gsplat")
    slow = render(s, c2w, K.cuda()[None], W, H, backend="torch")
    assert (fast.images - slow.images).abs().max() < 2 / 255

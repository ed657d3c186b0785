"""gsplat's CUDA rasterizer (the fast path)."""

from __future__ import annotations

import torch

from ..scene.gaussians import GaussianScene
from .torch_backend import SCREEN_BLUR_PX2


def render_gsplat(
    scene: GaussianScene,
    c2w,
    K,
    width,
    height,
    background,
    near,
    far,
    sh_degree,
    want_depth,
    want_alpha,
    want_info=False,
):
    from gsplat import rasterization

    from . import RenderOutput

    viewmats = torch.linalg.inv(c2w)
    colors, alphas, meta = rasterization(
        scene.means,
        scene.quats,
        scene.scales,
        scene.opacities,
        scene.sh,
        viewmats,
        K,
        width,
        height,
        near_plane=near,
        far_plane=far,
        sh_degree=sh_degree,
        eps2d=SCREEN_BLUR_PX2,
        backgrounds=background.expand(len(c2w), 3),
        render_mode="RGB+ED",
        packed=False,
    )
    return RenderOutput(
        images=colors[..., :3].clamp(0, 1),
        depth=colors[..., 3] if want_depth else None,
        alpha=alphas[..., 0] if want_alpha else None,
        info={k: meta[k] for k in ("means2d", "radii", "gaussian_ids")} if want_info else None,
    )

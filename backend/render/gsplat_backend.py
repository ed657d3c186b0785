"""gsplat's CUDA rasterizer (the fast path)."""

from __future__ import annotations

from collections.abc import Callable

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
    *,
    check_cancelled: Callable[[], None] | None = None,
):
    from . import RenderOutput

    viewmats = torch.linalg.inv(c2w)
    if check_cancelled is None:
        colors, alphas = _rasterize(
            scene, viewmats, K, width, height, background, near, far, sh_degree
        )
    else:  # one camera per call, so a cancel is seen between frames (each takes milliseconds)
        parts = []
        for view in range(len(c2w)):
            check_cancelled()
            parts.append(
                _rasterize(
                    scene,
                    viewmats[view : view + 1],
                    K[view : view + 1],
                    width,
                    height,
                    background,
                    near,
                    far,
                    sh_degree,
                )
            )
        colors = torch.cat([colour for colour, _ in parts])
        alphas = torch.cat([alpha for _, alpha in parts])
    return RenderOutput(
        images=colors[..., :3].clamp(0, 1),
        depth=colors[..., 3] if want_depth else None,
        alpha=alphas[..., 0] if want_alpha else None,
    )


def _rasterize(scene, viewmats, K, width, height, background, near, far, sh_degree):
    from gsplat import rasterization

    colors, alphas, _ = rasterization(
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
        backgrounds=background.expand(len(viewmats), 3),
        render_mode="RGB+ED",
        packed=False,
    )
    return colors, alphas

"""gsplat's CUDA rasterizer (the fast path)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..scene.gaussians import GaussianScene
from .torch_backend import SCREEN_BLUR_PX2

INFO_KEYS = ("means2d", "radii", "gaussian_ids")  # what gsplat.strategy reads from a render


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
    *,
    check_cancelled: Callable[[], None] | None = None,
):
    from . import RenderOutput

    viewmats = torch.linalg.inv(c2w)
    info = None
    if check_cancelled is None or want_info:
        # want_info: one call for all views, so the strategies' means2d is the very tensor the
        # rasterizer read (a fit step renders few views: one check before it is enough).
        if check_cancelled is not None:
            check_cancelled()
        colors, alphas, meta = _rasterize(
            scene, viewmats, K, width, height, background, near, far, sh_degree
        )
        info = {key: meta[key] for key in INFO_KEYS} if want_info else None
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
        colors = torch.cat([colour for colour, _, _ in parts])
        alphas = torch.cat([alpha for _, alpha, _ in parts])
    return RenderOutput(
        images=colors[..., :3].clamp(0, 1),
        depth=colors[..., 3] if want_depth else None,
        alpha=alphas[..., 0] if want_alpha else None,
        info=info,
    )


def _rasterize(scene, viewmats, K, width, height, background, near, far, sh_degree):
    from gsplat import rasterization

    return rasterization(
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

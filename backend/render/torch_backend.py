"""Pure-torch splat rasterizer for CPU and MPS, matching gsplat's CUDA kernels.

Hand-written because gsplat has no CPU kernels. Projection and SH evaluation reuse gsplat's own
pure-torch reference functions, so those parts are gsplat's maths exactly; what is written here
is the tile assignment and the compositing, following gsplat's rules: 16 px tiles, a Gaussian
joins every tile its 3.33-sigma box touches, alpha = min(0.999, opacity * exp(-sigma)), alphas
below 1/255 are skipped, and compositing stops before transmittance would fall to 1e-4.
Everything on the value path is plain differentiable torch (pose refinement backpropagates
through it); tile bookkeeping runs without gradients.

gsplat's torch functions are private (`gsplat.cuda._torch_impl`) and the constants below are
restated from its kernels, so pyproject.toml pins the tested gsplat minor release and
tests/scene/test_render.py checks the tile assignment against gsplat's torch reference and
these constants against the kernel sources gsplat ships.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _quat_scale_to_covar_preci,
    _spherical_harmonics,
)

from ..scene.gaussians import GaussianScene

TILE = 16
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4
SCREEN_BLUR_PX2 = 0.3  # gsplat's eps2d: added to each projected covariance's diagonal
# exp() of a large negative number takes a slow path (underflow) on CPU, tens of times slower;
# beyond this exponent alpha < ALPHA_MIN for any opacity <= 1, so clamping changes no value.
SIGMA_CUTOFF = 20.0
BATCH_ELEMENTS = 1 << 22  # pixels x Gaussians per batched compositing call (bounds its memory)


def render_torch(
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

    check = check_cancelled or _never_cancelled
    covars, _ = _quat_scale_to_covar_preci(scene.quats, scene.scales, compute_preci=False)
    viewmats = torch.linalg.inv(c2w)
    # want_info: all views projected in one call, so that the strategies' means2d (C, N, 2)
    # is the very tensor the compositing reads (its .grad is what they accumulate).
    projected = (
        _project(scene, covars, viewmats, K, width, height, near, far) if want_info else None
    )
    images, depths, alphas = [], [], []
    for view in range(len(c2w)):
        check()
        one = (
            tuple(t[view : view + 1] for t in projected)
            if projected is not None
            else _project(
                scene,
                covars,
                viewmats[view : view + 1],
                K[view : view + 1],
                width,
                height,
                near,
                far,
            )
        )
        image, depth, alpha = _render_one(
            scene, one, c2w[view], width, height, background, sh_degree, check
        )
        images.append(image)
        depths.append(depth)
        alphas.append(alpha)
    return RenderOutput(
        images=torch.stack(images),
        depth=torch.stack(depths) if want_depth else None,
        alpha=torch.stack(alphas) if want_alpha else None,
        info={"means2d": projected[1], "radii": projected[0], "gaussian_ids": None}
        if want_info
        else None,
    )


def _never_cancelled() -> None:
    pass


def _project(scene, covars, viewmats, K, width, height, near, far):
    """(radii, means2d, depths, conics) of every Gaussian in C views, each (C, N, ...)."""
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        scene.means,
        covars,
        viewmats,
        K,
        width,
        height,
        eps2d=SCREEN_BLUR_PX2,
        near_plane=near,
        far_plane=far,
    )
    return radii, means2d, depths, conics


def _render_one(scene, projected, c2w, width, height, background, sh_degree, check):
    radii, means2d, depths, conics = (t[0] for t in projected)
    visible = torch.nonzero((radii > 0).all(dim=-1)).squeeze(1)
    empty = torch.zeros(height, width, dtype=scene.means.dtype, device=scene.means.device)
    if visible.numel() == 0:
        return background.expand(height, width, 3).clone(), empty, empty
    # Front to back: sort the visible Gaussians by depth once; tile lists keep that order. Stable,
    # so equal depths (the stereo prior makes many) keep index order, as gsplat and numba do.
    visible = visible[torch.argsort(depths[visible].detach(), stable=True)]
    camera_centre = c2w[:3, 3]
    directions = scene.means[visible] - camera_centre
    colors = _spherical_harmonics(sh_degree, directions, scene.sh[visible]) + 0.5
    colors = torch.clamp_min(colors, 0.0)
    feature = torch.cat([colors, depths[visible, None]], dim=-1)  # composite depth alongside
    opacities = scene.opacities[visible]
    centre, conic = means2d[visible], conics[visible]

    tiles_x, tiles_y = (width + TILE - 1) // TILE, (height + TILE - 1) // TILE
    check()
    tile_ids, order = _tile_pairs(centre.detach(), radii[visible], tiles_x, tiles_y)
    counts = torch.bincount(tile_ids, minlength=tiles_x * tiles_y)
    starts = torch.cumsum(counts, 0) - counts

    tile_colour, tile_alpha = _composite_tiles(
        counts, starts, order, tiles_x, centre, conic, opacities, feature, check
    )
    # (tiles, TILE * TILE, ...) -> image rows and columns
    out = tile_colour.reshape(tiles_y, tiles_x, TILE, TILE, 4).permute(0, 2, 1, 3, 4)
    out = out.reshape(tiles_y * TILE, tiles_x * TILE, 4)
    out_alpha = tile_alpha.reshape(tiles_y, tiles_x, TILE, TILE).permute(0, 2, 1, 3)
    out_alpha = out_alpha.reshape(tiles_y * TILE, tiles_x * TILE)
    out, out_alpha = out[:height, :width], out_alpha[:height, :width]
    image = out[..., :3] + (1.0 - out_alpha[..., None]) * background
    depth = torch.where(
        out_alpha > 0, out[..., 3] / out_alpha.clamp_min(1e-10), torch.zeros_like(out_alpha)
    )
    return image, depth, out_alpha


@torch.no_grad()
def _tile_pairs(centre: torch.Tensor, radii: torch.Tensor, tiles_x: int, tiles_y: int):
    """(tile id, Gaussian index) pairs for every tile each Gaussian's box touches, grouped by
    tile and depth-ordered within a tile (Gaussians arrive sorted by depth)."""
    x0 = ((centre[:, 0] - radii[:, 0]) / TILE).floor().clamp(0, tiles_x).long()
    x1 = ((centre[:, 0] + radii[:, 0]) / TILE).ceil().clamp(0, tiles_x).long()
    y0 = ((centre[:, 1] - radii[:, 1]) / TILE).floor().clamp(0, tiles_y).long()
    y1 = ((centre[:, 1] + radii[:, 1]) / TILE).ceil().clamp(0, tiles_y).long()
    width, height = x1 - x0, y1 - y0
    per_gaussian = width * height
    gaussian = torch.repeat_interleave(
        torch.arange(len(centre), device=centre.device), per_gaussian
    )
    first = torch.cumsum(per_gaussian, 0) - per_gaussian
    local = torch.arange(len(gaussian), device=centre.device) - first[gaussian]
    tile_x = x0[gaussian] + local % width[gaussian]
    tile_y = y0[gaussian] + local // width[gaussian]
    tile_ids = tile_y * tiles_x + tile_x
    # Stable sort by tile keeps the depth order inside each tile.
    order = torch.sort(tile_ids, stable=True)
    return order.values, gaussian[order.indices]


def _composite_tiles(counts, starts, order, tiles_x, centre, conic, opacity, feature, check):
    """Every occupied tile composited in a few batched calls instead of one call per tile (a
    Python loop over hundreds of tiles dominated the CPU render time). Tiles are grouped by
    their Gaussian count so padding stays small; a padded slot has opacity 0, which leaves the
    compositing unchanged. Returns (tiles, TILE * TILE, 4) colour+depth and (tiles, TILE *
    TILE) alpha, zero for empty tiles. `check` runs before each batch, and again when the
    backward pass reaches each batch's output (a backward through a large scene takes as long
    as the forward, and a cancel must not wait for it)."""
    device, dtype = feature.device, feature.dtype
    tiles = len(counts)
    colour = torch.zeros(tiles, TILE * TILE, feature.shape[1], dtype=dtype, device=device)
    alpha = torch.zeros(tiles, TILE * TILE, dtype=dtype, device=device)
    occupied = torch.nonzero(counts).squeeze(1)
    if occupied.numel() == 0:
        return colour, alpha
    occupied = occupied[torch.argsort(counts[occupied], stable=True)]
    sizes = counts[occupied].tolist()
    offsets = torch.arange(TILE, dtype=dtype, device=device) + 0.5
    ys, xs = torch.meshgrid(offsets, offsets, indexing="ij")
    local = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # (TILE*TILE, 2) pixel centres
    first = 0
    while first < len(occupied):
        check()
        last = first + 1  # sizes ascend: the batch's widest tile is its last
        while last < len(occupied) and (last + 1 - first) * sizes[last] * TILE * TILE <= (
            BATCH_ELEMENTS
        ):
            last += 1
        batch = occupied[first:last]
        width = sizes[last - 1]
        slots = torch.arange(width, device=device)
        valid = slots[None, :] < counts[batch][:, None]
        members = order[torch.where(valid, starts[batch][:, None] + slots[None, :], 0)]
        origin = torch.stack([batch % tiles_x, batch // tiles_x], dim=-1).to(dtype) * TILE
        pixels = local[None] + origin[:, None, :]  # (B, TILE*TILE, 2)
        batch_colour, batch_alpha = _composite(
            pixels,
            centre[members],
            conic[members],
            torch.where(valid, opacity[members], torch.zeros_like(opacity[members])),
            feature[members],
        )
        if batch_colour.requires_grad:
            batch_colour.register_hook(lambda _grad: check())
        colour = colour.index_put((batch,), batch_colour)
        alpha = alpha.index_put((batch,), batch_alpha)
        first = last
    return colour, alpha


def _composite(pixels, centre, conic, opacity, feature):
    """Front-to-back alpha compositing of G depth-sorted Gaussians over P pixels; leading batch
    dimensions (tiles) are optional: pixels (..., P, 2), centre (..., G, 2), conic (..., G, 3),
    opacity (..., G), feature (..., G, F) -> ((..., P, F), (..., P))."""
    delta = pixels[..., :, None, :] - centre[..., None, :, :]  # (..., P, G, 2)
    dx, dy = delta[..., 0], delta[..., 1]
    a, b, c = (conic[..., None, :, i] for i in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.exp(-torch.clamp_max(sigma, SIGMA_CUTOFF))
    alpha = torch.clamp_max(opacity[..., None, :] * alpha, ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    after = torch.cumprod(1.0 - alpha, dim=-1)  # transmittance after each Gaussian
    before = torch.cat([torch.ones_like(after[..., :1]), after[..., :-1]], dim=-1)
    # gsplat stops (and skips that Gaussian) as soon as the transmittance would reach 1e-4.
    weight = torch.where(after > TRANSMITTANCE_MIN, alpha * before, torch.zeros_like(alpha))
    return weight @ feature, weight.sum(dim=-1)

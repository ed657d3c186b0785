"""The pure-torch renderer against a dense per-Gaussian reference built on gsplat's own
pure-torch projection and SH functions; outputs, background, gradients; and against gsplat
itself where gsplat runs on a CPU.

gsplat's full torch reference (`rendering._rasterization`) cannot run on a CPU: it calls the CUDA
`isect_tiles` and `rasterize_to_indices_in_range` kernels and needs nerfacc. What can is
compared: the tile assignment against `_torch_impl._isect_tiles`/`_isect_offset_encode`, and
the compositing constants against the kernel sources gsplat ships. Projection and SH are
gsplat's own functions in both renderers.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _isect_offset_encode,
    _isect_tiles,
    _quat_scale_to_covar_preci,
)
from videoscene_backend.render import render, to_uint8, torch_backend

from .render_reference import H, K, W, dense_reference, scene


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
    reference, _, _ = dense_reference(s, c2w, background)
    assert (out.images[0] - reference).abs().max() < 2 / 255
    assert out.alpha.shape == (1, H, W) and out.depth.shape == (1, H, W)
    covered = out.alpha[0] > 0.5
    assert covered.any() and ((out.depth[0][covered] > 1.5) & (out.depth[0][covered] < 5)).all()


def test_tile_assignment_matches_gsplats_torch_reference() -> None:
    s = scene(n=250, seed=3)
    c2w = torch.eye(4)
    covars, _ = _quat_scale_to_covar_preci(s.quats, s.scales, compute_preci=False)
    radii, means2d, depths, _, _ = _fully_fused_projection(
        s.means, covars, torch.linalg.inv(c2w)[None], K[None], W, H
    )
    tile = torch_backend.TILE
    tiles_x, tiles_y = (W + tile - 1) // tile, (H + tile - 1) // tile
    visible = torch.nonzero((radii[0] > 0).all(dim=-1)).squeeze(1)
    visible = visible[torch.argsort(depths[0, visible])]
    tile_ids, members = torch_backend._tile_pairs(
        means2d[0, visible], radii[0, visible], tiles_x, tiles_y
    )
    ours = list(zip(tile_ids.tolist(), visible[members].tolist(), strict=True))

    _, isect_ids, flatten_ids = _isect_tiles(means2d, radii, depths, tile, tiles_x, tiles_y)
    tile_bits = (tiles_x * tiles_y).bit_length()
    their_tiles = (isect_ids >> 32) & ((1 << tile_bits) - 1)
    theirs = list(zip(their_tiles.tolist(), flatten_ids.tolist(), strict=True))
    assert len(ours) > len(visible) and ours == theirs  # same pairs, same depth order per tile
    offsets = _isect_offset_encode(isect_ids, 1, tiles_x, tiles_y).flatten()
    counts = torch.bincount(tile_ids, minlength=tiles_x * tiles_y)
    torch.testing.assert_close(offsets.long(), torch.cumsum(counts, 0) - counts)


def _gsplat_source(name: str) -> str:
    import gsplat

    path = Path(gsplat.__file__).parent / "cuda" / name
    if not path.is_file():
        pytest.skip(f"this gsplat build ships no kernel sources ({name})")
    return path.read_text()


def test_compositing_constants_match_gsplats_kernels() -> None:
    """Our renderer restates gsplat's forward-kernel constants; an upgrade that changes one
    (gsplat's development branch moved MAX_ALPHA from 0.999 to 0.99) fails here."""
    forward = _gsplat_source("csrc/RasterizeToPixels3DGSFwd.cu")
    common = _gsplat_source("include/Common.h")
    max_alpha = re.search(r"min\(([0-9.]+)f,\s*opac \* __expf\(-sigma\)\)", forward)
    done = re.search(r"next_T <= ([0-9.e-]+)f", forward)
    threshold = re.search(r"#define ALPHA_THRESHOLD \(([0-9.]+)f? / ([0-9.]+)f?\)", common)
    assert max_alpha and done and threshold, "gsplat's kernel changed shape; re-read it"
    assert float(max_alpha.group(1)) == torch_backend.ALPHA_MAX
    assert float(done.group(1)) == torch_backend.TRANSMITTANCE_MIN
    numerator, denominator = (float(g.rstrip(".")) for g in threshold.groups())
    assert numerator / denominator == torch_backend.ALPHA_MIN
    assert "sigma < 0.f || alpha < ALPHA_THRESHOLD" in forward  # the skip rule we follow
    import gsplat

    defaults = inspect.signature(gsplat.rasterization).parameters
    assert defaults["tile_size"].default == torch_backend.TILE
    assert defaults["eps2d"].default == torch_backend.SCREEN_BLUR_PX2


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

"""The compiled (numba) CPU renderer against gsplat's own projection function, a dense reference
built on gsplat's functions, and the torch renderer: images, alpha and depth on random scenes,
on one that mixes tiny, huge, behind-the-camera and tile-border Gaussians, and on the sample
photos' real scene; then how `render(backend="auto")` picks it, and its fallback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import (
    _fully_fused_projection,
    _isect_tiles,
    _quat_scale_to_covar_preci,
)
from videoscene_backend import render as render_module
from videoscene_backend.render import render, torch_backend
from videoscene_backend.scene.gaussians import SH_C0, GaussianScene

from .render_reference import H, K, W, dense_reference, scene

numba_backend = pytest.importorskip("videoscene_backend.render.numba_backend")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TOLERANCE = 2 / 255
BACKGROUND = (0.2, 0.3, 0.4)


def hard_scene(seed: int) -> GaussianScene:
    """A random scene plus: sub-pixel Gaussians (eps2d decides their size), screen-filling ones
    (one of them half a unit in front of the camera), means behind the camera and between it
    and the near plane, centres on tile corners and edges, fully opaque ones (alpha clamped);
    concatenated in an order unrelated to depth."""
    g = torch.Generator().manual_seed(seed)
    base = scene(n=200, seed=seed)
    tile = torch_backend.TILE

    def part(means, scales, opacities):
        n = len(means)
        return means, scales, opacities, torch.randn(n, 4, generator=g)

    def on_pixels(u, v, z):
        return torch.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], -1)

    z = torch.rand(60, generator=g) * 2 + 2
    tiny = part(
        torch.randn(60, 3, generator=g) * 0.5 + torch.tensor([0, 0, 3.0]),
        torch.rand(60, 3, generator=g) * 1e-3 + 1e-4,
        torch.rand(60, generator=g) * 0.5 + 0.5,
    )
    huge = part(
        torch.tensor([[0.0, 0.0, 5.0], [0.5, -0.3, 3.5], [0.1, 0.1, 0.5]]),
        torch.tensor([[3.0, 2.0, 0.5], [1.5, 1.5, 1.5], [0.8, 0.4, 0.6]]),
        torch.tensor([0.3, 0.2, 0.15]),
    )
    behind = part(
        torch.cat(
            [
                torch.randn(30, 2, generator=g) * 0.3,
                -torch.rand(30, 1, generator=g) * 3 + torch.tensor(0.009),  # z in (-3, near)
            ],
            -1,
        ),
        torch.rand(30, 3, generator=g) * 0.5 + 0.05,
        torch.full((30,), 0.9),
    )
    corners = torch.stack(
        torch.meshgrid(
            torch.arange(0, W + 1, tile, dtype=torch.float32),
            torch.arange(0, H + 1, tile, dtype=torch.float32),
            indexing="ij",
        ),
        -1,
    ).reshape(-1, 2)
    edges = corners + torch.tensor([0.5, tile / 2])
    border_pixels = torch.cat([corners, edges])
    count = len(border_pixels)
    z = torch.rand(count, generator=g) * 2 + 2
    borders = part(
        on_pixels(border_pixels[:, 0], border_pixels[:, 1], z),
        torch.rand(count, 3, generator=g) * 0.05 + 0.02,
        torch.where(torch.rand(count, generator=g) < 0.3, 1.0, 0.8),
    )
    parts = [(base.means, base.scales, base.opacities, base.quats), tiny, huge, behind, borders]
    means, scales, opacities, quats = (torch.cat(column) for column in zip(*parts, strict=True))
    n = len(means)
    order = torch.randperm(n, generator=g)
    return GaussianScene(
        means[order],
        torch.nn.functional.normalize(quats[order], dim=-1),
        scales[order],
        opacities[order],
        torch.randn(n, 9, 3, generator=g)[order] * 0.4,
    )


CASES = {
    "random": lambda: scene(seed=0),
    "random_degree0": lambda: scene(n=400, seed=1, degree=0),
    "hard_0": lambda: hard_scene(0),
    "hard_1": lambda: hard_scene(1),
}


def camera(shift: float = 0.0) -> torch.Tensor:
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.1 + shift, -0.05, 0.0])
    return c2w


def compiled(s: GaussianScene, c2w: torch.Tensor, k: torch.Tensor = K, width=W, height=H):
    return render(
        s,
        c2w[None],
        k[None],
        width,
        height,
        background=BACKGROUND,
        backend="numba",
        return_alpha=True,
        return_depth=True,
    )


def assert_depth_close(depth, reference, alpha) -> None:
    """Expected depth, where enough is covered for it to be defined stably."""
    covered = alpha > 0.05
    assert covered.any()
    assert (depth[covered] - reference[covered]).abs().max() < 1e-3 * reference[covered].max()


def test_projection_matches_gsplats_function() -> None:
    """Means, conics, depths, radii and tile rectangles against gsplat's _fully_fused_projection
    and _isect_tiles in float64 (in float32 gsplat's conics of needle-like Gaussians are off by
    a few per cent; we compute in float64)."""
    s = hard_scene(2)
    viewmat = torch.linalg.inv(camera()).double()
    covars, _ = _quat_scale_to_covar_preci(s.quats.double(), s.scales.double(), compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        s.means.double(), covars, viewmat[None], K.double()[None], W, H, eps2d=0.3
    )
    n = s.num_gaussians
    ours = dict(
        means2d=np.empty((n, 2), np.float32),
        conics=np.empty((n, 3), np.float32),
        depths=np.empty(n, np.float32),
        radii=np.empty((n, 2), np.int32),
        rects=np.empty((n, 4), np.int32),
    )
    numba_backend._project(
        s.means.numpy(),
        s.quats.numpy(),
        s.scales.numpy(),
        viewmat.numpy(),
        K.double().numpy(),
        W,
        H,
        torch_backend.SCREEN_BLUR_PX2,
        0.01,
        1e10,
        torch_backend.TILE,
        *ours.values(),
    )
    visible = (radii[0] > 0).all(-1).numpy()
    assert 0 < visible.sum() < n  # some are culled: behind the camera, off screen
    np.testing.assert_array_equal(ours["radii"], radii[0].numpy())
    np.testing.assert_allclose(ours["depths"], depths[0].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours["means2d"][visible], means2d[0, visible], rtol=1e-5, atol=1e-3)
    reference = conics[0, visible].numpy()
    scale = np.abs(reference).max(axis=1, keepdims=True)
    assert (np.abs(ours["conics"][visible] - reference) / scale).max() < 1e-5
    tiles_x, tiles_y = -(-W // torch_backend.TILE), -(-H // torch_backend.TILE)
    per_gaussian, _, _ = _isect_tiles(
        means2d, radii, depths, torch_backend.TILE, tiles_x, tiles_y, sort=False
    )
    rects = ours["rects"]
    area = (rects[:, 1] - rects[:, 0]) * (rects[:, 3] - rects[:, 2])
    np.testing.assert_array_equal(area, per_gaussian[0].numpy())


@pytest.mark.parametrize("case", CASES)
def test_matches_the_dense_reference(case) -> None:
    s = CASES[case]()
    out = compiled(s, camera())
    image, alpha, depth = dense_reference(
        s, camera(), torch.tensor(BACKGROUND), dtype=torch.float64
    )
    assert (out.images[0] - image).abs().max() <= TOLERANCE
    assert (out.alpha[0] - alpha).abs().max() <= TOLERANCE
    assert alpha.max() > 0.9 and alpha.min() < 0.5  # opaque and see-through pixels both tested
    assert_depth_close(out.depth[0].double(), depth, alpha)


@pytest.mark.parametrize("case", CASES)
def test_matches_the_torch_renderer(case) -> None:
    s = CASES[case]()
    c2w = torch.stack([camera(), camera(0.2)])
    kwargs = dict(background=BACKGROUND, return_alpha=True, return_depth=True)
    ours = render(s, c2w, K.expand(2, 3, 3), W, H, backend="numba", **kwargs)
    theirs = render(s, c2w, K.expand(2, 3, 3), W, H, backend="torch", **kwargs)
    assert (ours.images - theirs.images).abs().max() <= TOLERANCE
    assert (ours.alpha - theirs.alpha).abs().max() <= TOLERANCE
    assert not torch.equal(ours.images[0], ours.images[1])
    for frame in range(2):
        assert_depth_close(ours.depth[frame], theirs.depth[frame], theirs.alpha[frame])


def test_matches_the_torch_renderer_on_the_sample_scene() -> None:
    """The stereo prior's scene of the sample photos (~440k Gaussians, the demo's scene) at the
    middle frame of the default flythrough, where disocclusions show the background. One
    frame at 240x160: the torch renderer takes about 15 CPU seconds for it."""
    import cv2
    from videoscene_backend.headless import scaled_camera
    from videoscene_backend.priors.stereo import StereoPrior
    from videoscene_backend.scene.flythrough import default_flythrough

    photos = [
        cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)
        for name in ("view_a.jpg", "view_b.jpg")
    ]
    fov = 2 * np.degrees(np.arctan(18 / 28))  # the samples' 28 mm lens on a 36 mm sensor
    s = StereoPrior().build(photos, fov, lambda *_: None, lambda: None)
    width, height = 240, 160
    cameras = [
        scaled_camera({"K": c.K, "c2w": c.c2w, "width": c.width, "height": c.height}, width, height)
        for c in s.reference_cameras
    ]
    c2w, k = default_flythrough(cameras[0], cameras[1], 49)
    c2w, k = torch.from_numpy(c2w[24:25]).float(), torch.from_numpy(k[24:25]).float()
    kwargs = dict(background=BACKGROUND, return_alpha=True, return_depth=True)
    with torch.no_grad():
        ours = render(s, c2w, k, width, height, backend="numba", **kwargs)
        theirs = render(s, c2w, k, width, height, backend="torch", **kwargs)
    assert (ours.images - theirs.images).abs().max() <= TOLERANCE
    assert (ours.alpha - theirs.alpha).abs().max() <= TOLERANCE
    assert theirs.alpha.max() > 0.99 and theirs.alpha.mean() > 0.5
    assert_depth_close(ours.depth[0], theirs.depth[0], theirs.alpha[0])


def test_the_nearer_of_two_layers_wins_whatever_their_order() -> None:
    """A red opaque sheet at depth 2 in front of a blue one at depth 4, listed blue first; seen
    from behind (the camera turned round at z = 6) the blue one is in front."""
    means = torch.tensor([[0.0, 0.0, 4.0], [0.0, 0.0, 2.0]])
    sh = torch.tensor([[[-0.5, -0.5, 0.5]], [[0.5, -0.5, -0.5]]]) / SH_C0  # blue, red
    s = GaussianScene(
        means, torch.tensor([[1.0, 0, 0, 0]] * 2), torch.full((2, 3), 2.0), torch.ones(2), sh
    )
    front = compiled(s, torch.eye(4))
    back_c2w = torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0]))
    back_c2w[2, 3] = 6.0
    back = compiled(s, back_c2w)
    centre = (H // 2, W // 2)
    torch.testing.assert_close(
        front.images[0][centre], torch.tensor([1.0, 0.0, 0.0]), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(
        back.images[0][centre], torch.tensor([0.0, 0.0, 1.0]), atol=1e-3, rtol=0
    )
    assert abs(float(front.depth[0][centre]) - 2.0) < 0.01
    assert abs(float(back.depth[0][centre]) - 2.0) < 0.01  # the blue sheet is 2 from this camera


def test_empty_view_shows_the_background() -> None:
    c2w = torch.eye(4)
    c2w[2, 3] = 10.0  # behind every Gaussian, looking away
    out = compiled(scene(), c2w)
    torch.testing.assert_close(out.images[0], torch.tensor(BACKGROUND).expand(H, W, 3))
    assert out.alpha.max() == 0 and out.depth.max() == 0


def test_check_cancelled_runs_between_frames_and_stops_the_render() -> None:
    calls = []

    class Stop(Exception):
        pass

    def check() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        render(
            scene(), torch.eye(4).repeat(3, 1, 1), K.expand(3, 3, 3), W, H, check_cancelled=check
        )
    assert len(calls) == 2


def test_auto_picks_the_compiled_renderer_unless_a_gradient_is_needed() -> None:
    s, c2w = scene(n=50), torch.eye(4)[None]
    pick = render_module._auto_backend
    assert pick(s, c2w, K[None]) == "numba"
    pose = c2w.clone().requires_grad_(True)
    assert pick(s, pose, K[None]) == "torch"  # pose refinement backpropagates to the camera
    s.means.requires_grad_(True)
    assert pick(s, c2w, K[None]) == "torch"
    with torch.no_grad():
        assert pick(s, pose, K[None]) == "numba"
    out = render(s, pose, K[None], W, H)
    out.images.mean().backward()  # auto gave a differentiable render
    assert pose.grad is not None and s.means.grad.abs().sum() > 0


def test_without_numba_auto_falls_back_to_torch_and_says_so(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    monkeypatch.delitem(sys.modules, "videoscene_backend.render.numba_backend")
    render_module._compiled_renderer.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="videoscene.backend"):
            assert render_module._auto_backend(scene(n=10), torch.eye(4)[None], K[None]) == "torch"
            out = render(scene(n=50), torch.eye(4), K, W, H)
        assert "compiled CPU renderer is unavailable" in caplog.text
        assert out.images.shape == (1, H, W, 3)
        with pytest.raises(RuntimeError, match="pip install numba"):
            render(scene(n=10), torch.eye(4), K, W, H, backend="numba")
    finally:
        render_module._compiled_renderer.cache_clear()

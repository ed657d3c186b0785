"""The far side of photo A's depth edges continued behind the near side (stereo/backdrop.py):
where it goes, how wide, at what depth and colour, that photo A is unchanged, and that it closes
holes between the cameras on a real pair (bench/real_photos/, issue #35)."""

from __future__ import annotations

import numpy as np
from videoscene_backend.priors.stereo import StereoPrior
from videoscene_backend.priors.stereo.backdrop import MAX_WIDTH_PX, background_layer
from videoscene_backend.priors.stereo.splats import hidden_from_a
from videoscene_backend.scene.gaussians import GaussianScene

from .test_real_photo_prior import SCEAUX_FOV, _noop, _photo, _render

FOCAL = 300.0


def _K(width: int, height: int) -> np.ndarray:
    return np.array([[FOCAL, 0, width / 2 - 0.5], [0, FOCAL, height / 2 - 0.5], [0, 0, 1.0]])


def _pixels(means: np.ndarray, K: np.ndarray) -> np.ndarray:
    projected = means.astype(np.float64) @ K.T
    return np.round(projected[:, :2] / projected[:, 2:]).astype(int)


def _box_scene(near: float, far: float = 10.0):
    """A real photo crop's colours on a far plane with a near box in its middle."""
    colours = _photo("sceaux/images/100_7103.jpg", width=160).astype(np.float32) / 255.0
    height, width = colours.shape[:2]
    depth = np.full((height, width), far)
    box = np.zeros((height, width), bool)
    box[30:80, 50:110] = True
    depth[box] = near
    return colours, depth, box, _K(width, height)


def test_the_far_side_continues_behind_the_near_side() -> None:
    colours, depth, box, K = _box_scene(near=2.0)  # a jump of 120 px: the widest strip
    layer = background_layer(depth, colours, K)
    assert len(layer.means) > 0
    cols, rows = _pixels(layer.means, K).T
    assert box[rows, cols].all()  # only behind the near box, each on its own pixel's ray
    inset = np.minimum.reduce([rows - 30, 79 - rows, cols - 50, 109 - cols])
    assert inset.max() < MAX_WIDTH_PX and inset.min() == 0  # a strip along the box's border
    np.testing.assert_allclose(layer.means[:, 2], 10.0, rtol=1e-5)  # at the far depth
    outside = colours[~box]  # each colour is one the far side shows
    nearest = np.min(np.abs(layer.colours[:, None, :] - outside[None, ::7, :]).sum(2), axis=1)
    assert np.median(nearest) < 0.05
    assert hidden_from_a(layer.means, depth, K).all()  # photo A's camera cannot see them


def test_the_strip_is_as_wide_as_the_jump_and_small_jumps_get_none() -> None:
    colours, depth, box, K = _box_scene(near=9.0)  # 300/9 - 300/10 = 3.3 px of disparity
    cols, rows = _pixels(background_layer(depth, colours, K).means, K).T
    inset = np.minimum.reduce([rows - 30, 79 - rows, cols - 50, 109 - cols])
    assert inset.max() <= 3
    colours, depth, box, K = _box_scene(near=9.6)  # 1.25 px: the near Gaussians cover it
    assert len(background_layer(depth, colours, K).means) == 0


def _subset(scene: GaussianScene, keep: np.ndarray) -> GaussianScene:
    return GaussianScene(
        means=scene.means[keep],
        quats=scene.quats[keep],
        scales=scene.scales[keep],
        opacities=scene.opacities[keep],
        sh=scene.sh[keep],
    )


def test_it_closes_holes_between_the_cameras_on_real_photos() -> None:
    photos = [_photo("sceaux/images/100_7103.jpg"), _photo("sceaux/images/100_7104.jpg")]
    scene = StereoPrior().build(photos, SCEAUX_FOV, _noop, _noop)
    added = scene.meta["gaussians_behind_edges"]
    assert added > 0
    camera = scene.reference_cameras[0]
    between = camera.c2w.copy()
    between[:3, 3] = scene.reference_cameras[1].c2w[:3, 3] / 2  # half way to photo B
    # Without the coarse band and backdrop (margins.py), which would hide every hole: with and
    # without the far side continued behind the edges.
    start, beyond = scene.meta["gaussians_a"], scene.meta["gaussians_beyond_frame"]
    end = scene.num_gaussians
    with_edges = _subset(scene, np.r_[0:start, start + beyond : end])
    without = _subset(scene, np.r_[0:start, start + beyond : end - added])
    _, alpha = _render(with_edges, between, camera.K, camera.width, camera.height)
    _, alpha_without = _render(without, between, camera.K, camera.width, camera.height)
    holes, holes_without = int((alpha < 0.5).sum()), int((alpha_without < 0.5).sum())
    assert holes < holes_without

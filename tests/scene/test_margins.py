"""The band beyond each photo's border and the coarse backdrop behind it (stereo/margins.py):
where the cells go, what colour and depth they take, that photo A's own camera does not see
them, and that on a real pair a camera stepping back or between the photos sees no black
(bench/real_photos/, issue #35)."""

from __future__ import annotations

import numpy as np
import torch
from videoscene_backend.priors.stereo import StereoPrior
from videoscene_backend.priors.stereo.margins import (
    BACKDROP_QUANTILE,
    BEHIND_FACTOR,
    margin_splats,
)
from videoscene_backend.priors.stereo.splats import FOOTPRINT_SIGMAS
from videoscene_backend.scene.gaussians import PLACEHOLDERS_META, GaussianScene

from .test_backdrop import _subset
from .test_real_photo_prior import SCEAUX_FOV, _noop, _photo, _psnr, _render

FOCAL = 300.0


def _K(width: int, height: int) -> np.ndarray:
    return np.array([[FOCAL, 0, width / 2 - 0.5], [0, FOCAL, height / 2 - 0.5], [0, 0, 1.0]])


def _project(means: np.ndarray, K: np.ndarray) -> np.ndarray:
    projected = means.astype(np.float64) @ K.T
    return projected[:, :2] / projected[:, 2:]


def test_the_band_continues_the_border_outside_the_frame_and_behind_it() -> None:
    height, width = 60, 80
    photo = np.zeros((height, width, 3), np.uint8)
    photo[:, : width // 2] = (200, 40, 40)  # red left half, blue right half
    photo[:, width // 2 :] = (30, 60, 220)
    depth = np.full((height, width), 5.0)
    depth[:, width // 2 :] = 8.0
    K = _K(width, height)
    cells = margin_splats(photo, depth, K)
    u, v = _project(cells.means, K).T
    inside = (u > -0.5) & (u < width - 0.5) & (v > -0.5) & (v < height - 0.5)
    assert inside.any() and (~inside).any()  # the coarse copy and the band
    # Everything sits behind the photo's surface, the band at least at the backdrop's depth.
    backdrop = np.quantile(depth, BACKDROP_QUANTILE)
    assert np.all(cells.means[:, 2] >= BEHIND_FACTOR * 5.0 - 1e-4)
    assert np.all(cells.means[~inside, 2] >= BEHIND_FACTOR * backdrop - 1e-4)
    # No band cell reaches into the frame with its footprint (photo A stays photo A).
    reach = FOOTPRINT_SIGMAS * cells.sigmas[~inside] * FOCAL / cells.means[~inside, 2]
    away = np.maximum.reduce(
        [-0.5 - u[~inside], u[~inside] - width + 0.5, -0.5 - v[~inside], v[~inside] - height + 0.5]
    )
    assert np.all(away > reach - 1e-3)
    # The band continues the border it extends: red beyond the left edge, blue beyond the right.
    left, right = ~inside & (u < -0.5), ~inside & (u > width - 0.5)
    assert left.any() and right.any()
    np.testing.assert_allclose(
        np.median(cells.colours[left], 0), np.array([200, 40, 40]) / 255, atol=0.05
    )
    np.testing.assert_allclose(
        np.median(cells.colours[right], 0), np.array([30, 60, 220]) / 255, atol=0.05
    )
    assert cells.filled.all() and not cells.confidence.any()  # a guess, and marked as one


def test_a_photo_b_border_is_not_continued_as_black() -> None:
    height, width = 60, 80
    photo = np.full((height, width, 3), 180, np.uint8)
    valid = np.ones((height, width), bool)
    photo[:, :20] = 0  # photo B re-imaged into A's camera: a black border it does not show
    valid[:, :20] = False
    cells = margin_splats(photo, np.full((height, width), 4.0), _K(width, height), valid=valid)
    assert cells.colours.min() > 0.6


def test_a_camera_stepping_back_sees_no_black_and_photo_a_is_kept() -> None:
    photos = [_photo("sceaux/images/100_7103.jpg"), _photo("sceaux/images/100_7104.jpg")]
    scene = StereoPrior().build(photos, SCEAUX_FOV, _noop, _noop)
    added = scene.meta["gaussians_beyond_frame"]
    assert added > 0
    start = scene.meta["gaussians_a"]
    without = _subset(scene, np.r_[0:start, start + added : scene.num_gaussians])
    camera = scene.reference_cameras[0]
    back = camera.c2w.copy()  # half a baseline back and half way towards photo B
    back[:3, 3] = scene.reference_cameras[1].c2w[:3, 3] / 2 - 0.5 * camera.c2w[:3, 2]
    _, alpha = _render(scene, back, camera.K, camera.width, camera.height)
    _, alpha_without = _render(without, back, camera.K, camera.width, camera.height)
    assert (alpha_without < 0.5).mean() > 0.03  # without the band: a black frame around it
    assert (alpha < 0.5).mean() < 0.005
    image, _ = _render(scene, camera.c2w, camera.K, camera.width, camera.height)
    assert _psnr(image, scene.reference_images[0]) >= 30.0


def test_split_placeholders_takes_out_exactly_the_marked_span() -> None:
    count = 10
    scene = GaussianScene(
        means=torch.arange(count * 3, dtype=torch.float32).reshape(count, 3),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(count, 1),
        scales=torch.full((count, 3), 0.1),
        opacities=torch.full((count,), 0.9),
        sh=torch.zeros(count, 1, 3),
        meta={"placeholders_start": 3, "placeholders_end": 7, "prior": "stereo"},
    )
    trimmed, placeholders = scene.split_placeholders()
    assert trimmed.num_gaussians == 6 and placeholders.num_gaussians == 4
    np.testing.assert_array_equal(trimmed.means[:, 0].numpy(), [0, 3, 6, 21, 24, 27])
    np.testing.assert_array_equal(placeholders.means[:, 0].numpy(), [9, 12, 15, 18])
    assert not set(PLACEHOLDERS_META) & set(trimmed.meta) and trimmed.meta["prior"] == "stereo"
    assert set(PLACEHOLDERS_META) <= set(scene.meta)  # the scene itself is left as it was
    assert trimmed.split_placeholders() == (trimmed, None)  # nothing marked: itself
    scene.meta["placeholders_end"] = "7"  # not this backend's (a hostile PLY's metadata)
    assert scene.split_placeholders() == (scene, None)

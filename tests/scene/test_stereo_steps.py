"""The stereo prior's steps on small synthetic pairs with known depth (tests/scene/
synthetic_stereo.py): the pose polish, the disparity range from the matches, matches at the
photos' borders, the matches' guide, the fill and its confidence, view 1's disocclusion
Gaussians and the far shell."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from videoscene_backend.priors.stereo import StereoPrior
from videoscene_backend.priors.stereo.disparity import (
    CONFIDENT,
    GUIDE_AGREE,
    GUIDE_REJECT,
    GUIDE_SIGMAS_PX,
    fill,
    guide_agreement,
    inside_photos,
    lr_confidence,
    search_range,
    sparse_guide,
    sparse_matches,
)
from videoscene_backend.priors.stereo.pose import polish, sampson_px
from videoscene_backend.priors.stereo.prior import opencv_intrinsics
from videoscene_backend.priors.stereo.splats import (
    CRACK_PUSH,
    FAR_DISPARITY_PX,
    MAX_GAUSSIANS,
    PixelSplats,
    behind,
    uncovered,
)

from .synthetic_stereo import FOCAL, FOV_DEG, HEIGHT, WIDTH, Plane, make_pair, true_disparity

BACKGROUND_DEPTH, FOREGROUND_DEPTH, BASELINE = 10.0, 4.0, 0.5
FOREGROUND = (-0.8, 0.6, -0.6, 0.5)  # world x0, x1, y0, y1 at the foreground's depth


def _noop(*_args) -> None:
    return None


def _build(pair):
    return StereoPrior().build(pair.images, FOV_DEG, _noop, _noop)


@pytest.fixture(scope="module")
def two_planes():
    pair = make_pair(
        [Plane(BACKGROUND_DEPTH, seed=1), Plane(FOREGROUND_DEPTH, bounds=FOREGROUND, seed=2)],
        BASELINE,
    )
    return pair, _build(pair)


def _view0_depth(scene) -> np.ndarray:
    return scene.means[: WIDTH * HEIGHT, 2].numpy().reshape(HEIGHT, WIDTH).astype(np.float64)


def _scale(pair, scene) -> float:
    """Scene units -> world units (the prior's baseline is 1)."""
    finite = np.isfinite(pair.depths[0])
    return float(np.median(pair.depths[0][finite] / _view0_depth(scene)[finite]))


def test_search_range_covers_the_matches_with_a_margin_not_the_width() -> None:
    matched = np.random.default_rng(0).uniform(20.0, 60.0, 500)
    search = search_range(matched, 640)
    assert search.num_disparities % 16 == 0
    assert search.min_disparity <= 20.0 - 4 and search.max_disparity >= 60.0 + 4
    assert search.num_disparities <= 80  # the old search was a third of the width (208 px)


def test_search_range_leaves_headroom_above_the_nearest_match() -> None:
    """Near surfaces at the photo's border often have no feature match: the search reaches a
    quarter beyond the largest matched disparity, while below the matches' margin suffices."""
    matched = np.random.default_rng(0).uniform(20.0, 60.0, 500)
    search = search_range(matched, 640)
    assert search.max_disparity >= 60.0 * 1.25
    assert search.min_disparity >= 20.0 - 8  # not down to zero: more room to mismatch


def _two_view_matches(R: np.ndarray, t: np.ndarray, K: np.ndarray, count: int = 400):
    rng = np.random.default_rng(3)
    points = np.c_[
        rng.uniform(-2, 2, count), rng.uniform(-1.5, 1.5, count), rng.uniform(4, 12, count)
    ]
    pixels = []
    for X in (points, points @ R.T + t):
        projected = X @ K.T
        pixels.append(projected[:, :2] / projected[:, 2:])
    return pixels


def test_polish_recovers_the_pose_from_a_perturbed_start() -> None:
    K = np.array([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1.0]])
    R_true = cv2.Rodrigues(np.array([0.02, -0.05, 0.01]))[0]
    t_true = np.array([1.0, 0.1, 0.05]) / np.linalg.norm([1.0, 0.1, 0.05])
    left, right = _two_view_matches(R_true, t_true, K)
    noise = np.random.default_rng(4).normal(0, 0.1, right.shape)  # 0.1 px, as good features
    right = right + noise
    R_start = cv2.Rodrigues(np.array([0.005, 0.004, -0.003]))[0] @ R_true  # ~0.4 degrees
    t_start = t_true + np.array([0.0, 0.03, -0.02])
    t_start /= np.linalg.norm(t_start)
    R, t = polish(R_start, t_start, left, right, K)
    rotation_error = np.degrees(np.linalg.norm(cv2.Rodrigues(R @ R_true.T)[0]))
    direction_error = np.degrees(np.arccos(np.clip(t @ t_true, -1, 1)))
    assert rotation_error < 0.05 and direction_error < 0.2
    rays = [np.c_[p, np.ones(len(p))] @ np.linalg.inv(K).T for p in (left, right)]
    before = np.median(np.abs(sampson_px(R_start, t_start, *rays, FOCAL)))
    after = np.median(np.abs(sampson_px(R, t, *rays, FOCAL)))
    assert after < 0.15 < before


def test_polish_is_not_pulled_by_outliers() -> None:
    K = np.array([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1.0]])
    R_true, t_true = np.eye(3), np.array([1.0, 0.0, 0.0])
    left, right = _two_view_matches(R_true, t_true, K)
    right = right.copy()
    right[:40, 1] += np.random.default_rng(5).uniform(3, 8, 40)  # a tenth off their row
    R, t = polish(R_true, t_true, left, right, K)
    assert np.degrees(np.linalg.norm(cv2.Rodrigues(R)[0])) < 0.1
    assert np.degrees(np.arccos(np.clip(t @ t_true, -1, 1))) < 0.5


def test_opencv_intrinsics_move_the_principal_point_half_a_pixel() -> None:
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    np.testing.assert_allclose(opencv_intrinsics(K), [[500, 0, 319.5], [0, 500, 239.5], [0, 0, 1]])
    np.testing.assert_allclose(K[:2, 2], [320, 240])  # the caller's K is left alone


def test_matches_whose_blocks_reach_beyond_a_photo_are_no_matches() -> None:
    """The black outside both photos and their borders match each other at the borders'
    offset, consistently in both directions; such matches must not count."""
    own = np.full((40, 100), 10.0, np.float32)
    own_mask = np.zeros((40, 100), bool)
    own_mask[:, 20:] = True  # view 0's photo starts at column 20
    other_mask = np.zeros((40, 100), bool)
    other_mask[:, 5:90] = True
    inside = inside_photos(own, -1, own_mask, other_mask)
    assert not inside[:, :23].any()  # the block touches view 0's border
    assert not inside[:3].any()  # or the canvas's edge
    assert inside[10:30, 30:90].all()  # matched at x - 10 in 20..80: inside view 1
    assert not inside[:, 97:].any()  # the match would land within a block of view 1's edge
    own[:, 50] = 60.0  # its match lands at -10: outside the canvas
    assert not inside_photos(own, -1, own_mask, other_mask)[:, 50].any()


def test_matches_off_their_row_do_not_widen_the_range() -> None:
    left = np.array([[100.0, 50.0], [200.0, 80.0], [300.0, 90.0]])
    right = np.array([[70.0, 50.5], [170.0, 80.0], [100.0, 140.0]])  # the last one is wrong
    matches = sparse_matches(left, right)
    np.testing.assert_allclose(matches.disparity, [30.0, 30.0])
    np.testing.assert_allclose(matches.left, left[:2])


def test_the_prior_searches_the_true_disparities_of_the_scene(two_planes) -> None:
    _, scene = two_planes
    low, high = (int(v) for v in scene.meta["disparity_search"].split(".."))
    near, far = (true_disparity(d, BASELINE) for d in (FOREGROUND_DEPTH, BACKGROUND_DEPTH))
    assert low <= far - 2 and high >= near + 2
    assert high - low <= 2 * (near - far) + 32  # sized from the scene, not from the width


def test_every_pixel_of_view_0_gets_one_gaussian_at_its_true_depth(two_planes) -> None:
    pair, scene = two_planes
    assert scene.meta["gaussians_a"] == WIDTH * HEIGHT and scene.meta["coverage"] == 1.0
    assert WIDTH * HEIGHT < scene.num_gaussians <= MAX_GAUSSIANS
    scale = _scale(pair, scene)
    assert abs(scale - BASELINE) < 0.03 * BASELINE
    error = np.abs(_view0_depth(scene) * scale - pair.depths[0]) / pair.depths[0]
    assert np.median(error) < 0.01 and np.mean(error < 0.05) > 0.97
    # Each Gaussian lies on its own pixel's ray: it projects onto that pixel's centre, which
    # the scene's cameras (like the renderers and Blender) put at (j + 0.5, i + 0.5).
    camera = scene.reference_cameras[0]
    projected = scene.means[: WIDTH * HEIGHT].numpy().astype(np.float64) @ camera.K.T
    pixels = projected[:, :2] / projected[:, 2:]
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    np.testing.assert_allclose(pixels, np.c_[xs.ravel(), ys.ravel()] + 0.5, atol=1e-2)


def test_view_1_adds_only_what_view_0_does_not_see(two_planes) -> None:
    pair, scene = two_planes
    count_b, beyond = scene.meta["gaussians_b_disoccluded"], scene.meta["gaussians_beyond_frame"]
    added = count_b + scene.meta["gaussians_behind_edges"] + beyond
    assert added == scene.num_gaussians - WIDTH * HEIGHT
    # After view 0's: the coarse band and backdrop (margins.py, tested in test_margins.py), then
    # view 1's, then the far side continued behind view 0's depth edges (backdrop.py): these
    # last two are background, and both lie where view 0 does not show it.
    extra = scene.means[WIDTH * HEIGHT + beyond :].numpy().astype(np.float64)
    extra *= _scale(pair, scene)
    assert count_b > 1000 and scene.meta["gaussians_behind_edges"] > 0
    # Far fewer than view 1's pixels: what both views see is not added twice.
    assert count_b < 0.15 * WIDTH * HEIGHT
    # They are background: the strip beyond view 0's right edge and the background hidden
    # behind the foreground from view 0.
    assert np.median(np.abs(extra[:, 2] - BACKGROUND_DEPTH) / BACKGROUND_DEPTH) < 0.02
    pixels = extra @ np.array(scene.reference_cameras[0].K).T
    u, v = pixels[:, 0] / pixels[:, 2], pixels[:, 1] / pixels[:, 2]
    beyond_edge = u >= WIDTH - 0.5
    x0, x1, y0, y1 = (FOCAL * c / FOREGROUND_DEPTH for c in FOREGROUND)
    behind_foreground = (
        (u >= WIDTH / 2 + x0 - 4)
        & (u < WIDTH / 2 + x1 + 4)
        & (v >= HEIGHT / 2 + y0 - 4)
        & (v < HEIGHT / 2 + y1 + 4)
    )
    assert beyond_edge.sum() > 0.3 * len(extra) and behind_foreground.sum() > 0.2 * len(extra)
    assert np.mean(beyond_edge | behind_foreground) > 0.95


def test_fill_gives_holes_the_disparity_of_their_own_surface_and_marks_them() -> None:
    guide = np.zeros((60, 80, 3), np.uint8)
    guide[:, 40:] = 200  # two surfaces, split at column 40
    disparity = np.where(np.arange(80)[None, :] < 40, 10.0, 30.0).astype(np.float32)
    disparity = np.repeat(disparity, 60, axis=0)
    confidence = np.ones_like(disparity)
    disparity[20:40, 45:70] = np.nan  # a hole inside the right surface
    confidence[20:40, 45:70] = 0.0
    result = fill(disparity, confidence, guide, np.ones(disparity.shape, bool))
    np.testing.assert_allclose(result.disparity[20:40, 45:70], 30.0, atol=0.5)
    assert result.filled[20:40, 45:70].all() and result.filled.sum() == 20 * 25
    assert (result.confidence[20:40, 45:70] < CONFIDENT).all()
    assert (result.confidence[~result.filled] >= CONFIDENT).all()
    np.testing.assert_allclose(result.disparity[:, :40], 10.0, atol=0.5)


def _plane_disparity(shape: tuple[int, int]) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (20.0 + 0.05 * xs + 0.02 * ys).astype(np.float32)


def test_the_guide_interpolates_the_matches_and_is_unknown_where_none_are_near() -> None:
    shape = (120, 240)
    plane = _plane_disparity(shape)
    rng = np.random.default_rng(3)
    positions = rng.uniform((0, 0), (100, 120), (150, 2))  # (x, y): the left part only
    disparities = plane[positions[:, 1].astype(int), positions[:, 0].astype(int)]
    guide = sparse_guide(positions, disparities, shape)
    inner = guide[10:110, 10:90]
    np.testing.assert_allclose(inner, plane[10:110, 10:90], atol=0.6)
    far = int(100 + 4 * max(GUIDE_SIGMAS_PX))
    assert np.isnan(guide[:, far:]).all()


def test_block_matches_far_from_the_guide_lose_their_confidence() -> None:
    guide = np.full((5, 4), 40.0, np.float32)
    guide[4] = np.nan  # no matches near this row
    agree = GUIDE_AGREE[0] + GUIDE_AGREE[1] * 40.0
    reject = GUIDE_REJECT[0] + GUIDE_REJECT[1] * 40.0
    rows = [40.5, 40.0 - agree, 40.0 + (agree + reject) / 2, 40.0 + reject + 2.0, 90.0]
    own = np.repeat(np.array(rows, np.float32)[:, None], 4, axis=1)
    own[2, 2] = np.nan  # no match at all
    agreement = guide_agreement(own, guide)
    assert (agreement[:2] == 1.0).all()  # within the tolerance
    np.testing.assert_allclose(agreement[2, [0, 1, 3]], 0.5, atol=1e-5)  # soft in between
    assert agreement[2, 2] == 0.0
    assert (agreement[3] == 0.0).all()  # e.g. another period of a repetitive texture
    assert (agreement[4] == 1.0).all()  # nothing to judge it by


def test_the_fill_takes_the_guide_where_no_match_is_confident() -> None:
    """A striped surface SGBM could not match: the colour-guided fill cannot cross its stripes,
    so without the guide it falls back to the other surface's disparity."""
    shape = (60, 120)
    colours = np.zeros((*shape, 3), np.uint8)
    colours[:, 60:][:, ::4] = 220  # stripes on the right half
    plane = _plane_disparity(shape)
    disparity = np.where(np.arange(120)[None, :] < 60, 10.0, np.nan).astype(np.float32)
    disparity = np.repeat(disparity, 60, axis=0)
    confidence = np.where(np.isnan(disparity), 0.0, 1.0).astype(np.float32)
    mask = np.ones(shape, bool)
    guide = np.where(np.arange(120)[None, :] >= 60, plane, np.nan).astype(np.float32)
    guided = fill(disparity, confidence, colours, mask, guide)
    np.testing.assert_allclose(guided.disparity[:, 64:], plane[:, 64:], atol=1.0)
    assert guided.filled[:, 60:].all() and (guided.confidence[:, 60:] < CONFIDENT).all()
    unguided = fill(disparity, confidence, colours, mask)
    assert np.abs(unguided.disparity[:, 64:] - plane[:, 64:]).mean() > 5.0


def test_left_right_check_is_soft_and_sub_pixel() -> None:
    own = np.full((4, 40), 5.0, np.float32)
    other = np.full((4, 40), 5.0, np.float32)
    other[:, :20] += 0.3  # within tolerance: full confidence
    other[:, 20:30] += 1.25  # half way to rejection
    other[:, 30:] += 5.0  # rejected
    confidence = lr_confidence(own, other, -1)
    assert (confidence[:, 8:22] == 1.0).all()  # columns x - 5 in 3..17
    np.testing.assert_allclose(confidence[:, 26:34], 0.5, atol=1e-5)
    assert (confidence[:, 36:] == 0.0).all()


def test_what_view_1_cannot_see_is_filled_with_lower_confidence(two_planes) -> None:
    """View 0's left strip is outside view 1's photo: no match is possible there, so its depth
    comes from the fill (the background next to it) and it is marked as filled."""
    pair, scene = two_planes
    strip = int(true_disparity(BACKGROUND_DEPTH, BASELINE)) - 3
    assert 0.02 < scene.meta["filled_fraction"] < 0.2
    depth = _view0_depth(scene) * _scale(pair, scene)
    np.testing.assert_allclose(np.median(depth[:, :strip]), BACKGROUND_DEPTH, rtol=0.03)
    opacities = scene.opacities[: WIDTH * HEIGHT].numpy().reshape(HEIGHT, WIDTH)
    assert np.median(opacities[:, :strip]) < np.median(opacities) - 0.05
    assert np.median(opacities) > 0.99  # matched pixels are nearly opaque


def test_a_background_at_infinity_goes_onto_the_far_shell() -> None:
    pair = make_pair([Plane(np.inf, seed=5), Plane(5.0, bounds=(-10, 10, 0.0, 10), seed=6)], 0.5)
    scene = _build(pair)
    far = ~np.isfinite(pair.depths[0])
    assert 0.4 < far.mean() < 0.6
    assert abs(scene.meta["far_fraction"] - far.mean()) < 0.05
    assert scene.meta["gaussians_a"] == WIDTH * HEIGHT  # kept, not dropped
    points = scene.means[: WIDTH * HEIGHT].numpy().astype(np.float64)
    distance = np.linalg.norm(points, axis=1).reshape(HEIGHT, WIDTH)
    near_depth = np.median(_view0_depth(scene)[~far])
    shell = scene.reference_cameras[0].K[0, 0] / FAR_DISPARITY_PX  # baseline 1
    inner = far.copy()
    inner[HEIGHT // 2 - 8 :] = False  # away from the horizon, where the fill blends
    assert np.median(distance[inner]) > 20 * near_depth
    assert np.median(np.abs(distance[inner] / shell - 1.0)) < 0.2


def _plane_points(depth: float, width: int = 64, height: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """One point per pixel centre (OpenCV convention) of a fronto-parallel plane, and K."""
    K = np.array([[50.0, 0, (width - 1) / 2], [0, 50.0, (height - 1) / 2], [0, 0, 1]])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.linalg.solve(K, np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)]))
    return (rays * depth).T, K


def test_view_1_fills_the_cracks_where_view_0_is_stretched() -> None:
    means, K = _plane_points(depth=4.0)
    # The same camera: every pixel receives view 0's own Gaussian, nothing to fill.
    assert not uncovered(means, np.eye(3), np.zeros(3), K, 64, 48).any()
    # View 1 halfway to the plane: view 0's Gaussians land two pixels apart, so about three
    # pixels in four are cracks that view 1's own Gaussians must fill.
    cracks = uncovered(means, np.eye(3), np.array([0.0, 0.0, -2.0]), K, 64, 48)
    assert 0.6 < cracks.mean() < 0.9
    # Behind view 1 or outside its photo counts for nothing.
    assert uncovered(means, np.eye(3), np.array([0.0, 0.0, -5.0]), K, 64, 48).all()


def test_crack_fillers_sit_just_behind_view_0s_surface() -> None:
    means, _ = _plane_points(depth=4.0, width=4, height=2)
    count = len(means)
    splats = PixelSplats(
        means=means.astype(np.float32),
        colours=np.zeros((count, 3), np.float32),
        sigmas=np.full(count, 0.01, np.float32),
        opacities=np.ones(count, np.float32),
        confidence=np.ones(count, np.float32),
        filled=np.zeros(count, bool),
        far=np.zeros(count, bool),
    )
    selected = np.arange(count) % 2 == 0
    centre = np.array([1.0, 0.0, 0.0])  # view 1's camera centre in view 0's frame
    behind(splats, selected, centre)
    moved = np.linalg.norm(splats.means - centre, axis=1) / np.linalg.norm(means - centre, axis=1)
    np.testing.assert_allclose(moved[selected], 1 + CRACK_PUSH, rtol=1e-5)
    np.testing.assert_allclose(moved[~selected], 1.0, rtol=1e-6)

"""Cover-and-crop geometry: a scene point lands on the same output pixel (within 1 px) whether
rendered at the requested size or on the model canvas and cut back; photos on the canvas."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from videoscene_backend.render import render, to_uint8
from videoscene_backend.scene.gaussians import GaussianScene
from videoscene_backend.video.canvas import fit_canvas, place_photo, pose_offset

REAL_CANVAS = (720, 480)  # width, height
TINY_CANVAS = (96, 64)


def _project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def _intrinsics(width: int, height: int, focal: float, shift=(0.0, 0.0)) -> np.ndarray:
    return np.array(
        [[focal, 0.0, width / 2 + shift[0]], [0.0, focal, height / 2 + shift[1]], [0, 0, 1.0]]
    )


@pytest.mark.parametrize(
    ("size", "canvas"),
    [
        ((1920, 1080), REAL_CANVAS),
        ((1080, 1920), REAL_CANVAS),
        ((640, 360), TINY_CANVAS),
        ((720, 480), REAL_CANVAS),
        ((333, 517), REAL_CANVAS),
        ((4096, 16), REAL_CANVAS),
        ((48, 32), REAL_CANVAS),
    ],
)
def test_fit_covers_the_view_with_one_uniform_scale(size, canvas) -> None:
    width, height = size
    fit = fit_canvas(width, height, *canvas)
    s = fit.scale
    assert fit.offset_x >= 0 and fit.offset_y >= 0 and 0 in (fit.offset_x, fit.offset_y)
    assert s * (fit.offset_x + width) <= canvas[0] and s * (fit.offset_y + height) <= canvas[1]
    # The view fills the canvas along one axis, and is centred within a pixel along the other.
    assert s * width == canvas[0] or s * height == canvas[1]
    assert abs((canvas[0] / s - width) / 2 - fit.offset_x) < 1
    assert abs((canvas[1] / s - height) / 2 - fit.offset_y) < 1
    assert fit.cut_back(np.zeros((canvas[1], canvas[0], 3), np.uint8)).shape == (height, width, 3)


def test_same_size_and_aspect_is_the_identity() -> None:
    fit = fit_canvas(720, 480, *REAL_CANVAS)
    assert fit.scale == 1 and (fit.offset_x, fit.offset_y) == (0, 0)
    K = _intrinsics(720, 480, 600.0)
    assert np.allclose(fit.canvas_intrinsics(K), K)
    frame = np.random.default_rng(0).integers(0, 256, (480, 720, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit.cut_back(frame), frame)


def test_sixteen_by_nine_on_the_real_canvas() -> None:
    fit = fit_canvas(1920, 1080, *REAL_CANVAS)
    assert fit.scale == Fraction(3, 8) and (fit.offset_x, fit.offset_y) == (0, 100)
    # The canvas shows 37.5 canvas rows more above and below the 16:9 view: no stretch.
    assert fit.describe()["view_on_canvas_px"] == [0.0, 37.5, 720.0, 405.0]


@pytest.mark.parametrize("shift", [(0.0, 0.0), (130.0, -70.0)])
def test_projected_points_map_back_exactly(shift) -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform([-2, -1, 3], [2, 1, 8], size=(50, 3))
    for width, height in ((1920, 1080), (1080, 1920), (500, 500)):
        K = _intrinsics(width, height, 0.8 * width, shift)
        fit = fit_canvas(width, height, *REAL_CANVAS)
        on_canvas = _project(fit.canvas_intrinsics(K), points)
        back = (on_canvas / float(fit.scale)) - [fit.offset_x, fit.offset_y]
        assert np.abs(back - _project(K, points)).max() < 1e-9


def _dot_scene(points: np.ndarray, sigma: float) -> GaussianScene:
    """One small opaque Gaussian per point, each in its own colour channel."""
    count = len(points)
    sh = torch.full((count, 1, 3), -0.5 / 0.28209479177387814)  # colour 0
    for index in range(count):
        sh[index, 0, index % 3] = 0.5 / 0.28209479177387814  # colour 1 in one channel
    return GaussianScene(
        means=torch.tensor(points, dtype=torch.float32),
        quats=torch.tensor([[1.0, 0, 0, 0]] * count),
        scales=torch.full((count, 3), sigma),
        opacities=torch.full((count,), 0.99),
        sh=sh,
    )


def _centroids(image: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    weights = image.astype(np.float64)
    total = weights.sum(axis=(0, 1))
    return (
        np.stack(
            [
                (weights * (xs[..., None] + 0.5)).sum((0, 1)),
                (weights * (ys[..., None] + 0.5)).sum((0, 1)),
            ],
            axis=-1,
        )
        / total[:, None]
    )


@pytest.mark.parametrize(
    ("size", "canvas", "shift"),
    [
        ((160, 90), TINY_CANVAS, (9.0, -5.0)),  # 16:9 onto 3:2, enlarged back
        ((60, 100), TINY_CANVAS, (0.0, 0.0)),  # portrait
        ((192, 108), (240, 160), (-12.0, 4.0)),  # 16:9, shrunk back
    ],
)
def test_a_scene_point_lands_on_the_same_output_pixel(size, canvas, shift) -> None:
    """Render three dots at the requested size, and on the canvas with the covering
    intrinsics cut back to the requested size: their centroids agree within 1 px."""
    width, height = size
    K = _intrinsics(width, height, 0.9 * max(width, height), shift)
    depth = 4.0
    pixels = np.array(
        [[0.3 * width, 0.35 * height], [0.7 * width, 0.5 * height], [0.5 * width, 0.75 * height]]
    )
    rays = np.linalg.inv(K) @ np.c_[pixels, np.ones(3)].T
    points = (rays * depth / rays[2]).T
    sigma = 3.0 * depth / K[0, 0]  # about three output pixels
    scene = _dot_scene(points, sigma)
    c2w = torch.eye(4, dtype=torch.float64)[None]

    def draw(intrinsics: np.ndarray, w: int, h: int) -> np.ndarray:
        return to_uint8(render(scene, c2w, torch.from_numpy(intrinsics)[None], w, h).images)[0]

    direct = draw(K, width, height)
    fit = fit_canvas(width, height, *canvas)
    via_canvas = fit.cut_back(draw(fit.canvas_intrinsics(K), *canvas))
    assert via_canvas.shape == direct.shape
    expected = _project(K, points)
    assert np.abs(_centroids(direct) - expected).max() < 0.5  # the dots are where K puts them
    assert np.abs(_centroids(via_canvas) - _centroids(direct)).max() < 1.0


def test_photo_is_placed_by_the_intrinsics_homography_without_stretch() -> None:
    # A square 512 px photo with a dot at pixel (300, 200), onto a 3:2 canvas camera with the
    # same optical centre but another focal length and principal point.
    photo = np.zeros((512, 512, 3), np.uint8)
    photo[190:211, 290:311, 0] = 255  # a red square centred on pixel (300, 200)
    photo_K = _intrinsics(512, 512, 0.8 * 512)
    canvas_K = _intrinsics(96, 64, 60.0, (3.0, 0.0))
    background = np.full((64, 96, 3), 40, np.uint8)
    placed, coverage = place_photo(photo, photo_K, canvas_K, background)
    homography = canvas_K @ np.linalg.inv(photo_K)
    expected = homography @ [300.5, 200.5, 1.0]
    dot = placed[..., 0].astype(float) - placed[..., 1]  # red only where the square is
    ys, xs = np.mgrid[:64, :96]
    centroid = [(dot * (xs + 0.5)).sum() / dot.sum(), (dot * (ys + 0.5)).sum() / dot.sum()]
    assert np.allclose(centroid, expected[:2], atol=0.5)
    # Uniform scale: the photo covers a square region of 512 * 60 / 409.6 = 75 px.
    assert coverage == pytest.approx(75 * 64 / (96 * 64), abs=0.03)
    assert (placed[:, :5] == 40).all()  # left of the photo: the background (coarse render)


def test_pose_offset() -> None:
    a = np.eye(4)
    b = np.eye(4)
    b[:3, 3] = (0.0, 3.0, 4.0)
    angle = np.radians(10.0)
    b[:3, :3] = [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    distance, degrees = pose_offset(a, b)
    assert distance == pytest.approx(5.0) and degrees == pytest.approx(10.0)

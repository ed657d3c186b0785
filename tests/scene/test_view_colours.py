"""view_colours.py: each Gaussian shows photo A's colour from camera A and photo B's look from
camera B, evaluated with the renderers' own spherical harmonics (gsplat's), so a sign or a
basis-order mistake fails here."""

from __future__ import annotations

import numpy as np
import torch
from gsplat.cuda._torch_impl import _spherical_harmonics
from videoscene_backend.priors.stereo.splats import project
from videoscene_backend.priors.stereo.view_colours import (
    MAX_CHANGE,
    change_seen_from_b,
    colours_seen,
    nearest_in_front,
    two_view_sh,
)
from videoscene_backend.scene.gaussians import SH_C0

K = np.array([[50.0, 0, 29.5], [0, 50.0, 19.5], [0, 0, 1]])  # 60x40 px, OpenCV's convention


def _colour_seen(sh: np.ndarray, means: np.ndarray, camera: np.ndarray) -> np.ndarray:
    directions = torch.from_numpy(means - camera).float()
    return (_spherical_harmonics(1, directions, torch.from_numpy(sh)) + 0.5).numpy()


def test_camera_a_sees_its_colour_and_camera_b_the_changed_one() -> None:
    rng = np.random.default_rng(0)
    means = np.c_[rng.uniform(-2, 2, (500, 2)), rng.uniform(2, 8, 500)]
    colours = rng.uniform(0.2, 0.8, (500, 3))
    change = rng.uniform(-0.2, 0.2, (500, 3))
    centre_b = np.array([1.0, 0.1, 0.2])
    sh = two_view_sh(means, colours, change, centre_b)
    assert sh.shape == (500, 4, 3)
    np.testing.assert_allclose(_colour_seen(sh, means, np.zeros(3)), colours, atol=1e-4)
    np.testing.assert_allclose(_colour_seen(sh, means, centre_b), colours + change, atol=1e-3)
    # The DC colour (what Blender's point cloud shows) stays photo A's.
    np.testing.assert_allclose(SH_C0 * sh[:, 0] + 0.5, colours, atol=1e-6)
    # Halfway between the cameras, halfway between the colours (to first order).
    halfway = _colour_seen(sh, means, centre_b / 2)
    np.testing.assert_allclose(halfway, colours + change / 2, atol=0.02)


def test_a_large_change_is_capped_and_a_point_without_parallax_keeps_its_colour() -> None:
    means = np.array([[0.0, 0.0, 4.0], [0.0, 0.0, 1e7]])
    colours = np.array([[0.1, 0.5, 0.9], [0.5, 0.5, 0.5]])
    change = np.array([[0.8, 0.0, -0.8], [0.4, -0.4, 0.4]])
    centre_b = np.array([1.0, 0.0, 0.0])
    sh = two_view_sh(means, colours, change, centre_b)
    expected = colours[0] + np.clip(change[0], -MAX_CHANGE, MAX_CHANGE)
    np.testing.assert_allclose(_colour_seen(sh, means, centre_b)[0], expected, atol=1e-4)
    assert np.all(sh[1, 1:] == 0)  # at 10^7 baselines both cameras see it along one direction
    assert np.all(np.isfinite(sh))


def test_colours_are_taken_where_the_photo_shows_the_point() -> None:
    photo = np.zeros((40, 60, 3), np.uint8)
    photo[:, 30:] = (255, 0, 0)  # the right half red
    valid = np.ones((40, 60), bool)
    valid[:, 50:] = False  # a border that the photo does not cover
    points = np.array(
        [
            [0.0, 0.0, 5.0],  # column 29.5: between black and red
            [0.5, 0.0, 5.0],  # column 34.5: red
            [-1.0, 0.0, 5.0],  # column 19.5: black
            [2.5, 0.0, 5.0],  # column 54.5: the border, not seen
            [0.0, 0.0, -5.0],  # behind the camera
            [40.0, 0.0, 5.0],  # outside the photo
        ]
    )
    colours, seen = colours_seen(project(points, K), photo, valid)
    assert seen.tolist() == [True, True, True, False, False, False]
    np.testing.assert_allclose(colours[1], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(colours[2], [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(colours[0], [0.5, 0.0, 0.0], atol=1e-6)  # bilinear


def test_a_point_hidden_behind_an_opaque_one_is_not_seen() -> None:
    points = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 5.0], [0.12, 0.0, 5.0], [1.0, 0.0, 5.0]])
    opaque = np.array([True, True, True, True])
    # the second and third lie behind the first (the third one pixel beside it: the 3x3 rule)
    assert nearest_in_front(project(points, K), opaque, (40, 60)).tolist() == [
        True,
        False,
        False,
        True,
    ]
    # a see-through point in front hides nothing (and is seen itself)
    see_through = np.array([False, True, True, True])
    assert nearest_in_front(project(points, K), see_through, (40, 60)).all()


def test_the_change_is_photo_b_minus_photo_a_where_b_sees_the_point() -> None:
    """Photo B is photo A one unit to the right, a tenth brighter: a wall at depth 5 seen by
    both changes by that tenth; a point outside photo B does not change."""
    rng = np.random.default_rng(1)
    photo_a = np.full((40, 60, 3), 100, np.uint8) + rng.integers(0, 5, (40, 60, 3)).astype(np.uint8)
    shift = 10  # pixels: focal 50 x baseline 1 / depth 5
    photo_b = np.zeros_like(photo_a)
    photo_b[:, : 60 - shift] = np.clip(photo_a[:, shift:].astype(int) + 25, 0, 255)
    valid_b = np.zeros((40, 60), bool)
    valid_b[:, : 60 - shift] = True
    wall = np.array([[x, y, 5.0] for x in (-0.5, 0.0, 0.5) for y in (-0.2, 0.0, 0.2)])
    outside = np.array([[-2.9, 0.0, 5.0]])  # column -0.5 of photo B
    means = np.vstack([wall, outside])
    colours = np.full((len(means), 3), 0.4)
    change = change_seen_from_b(
        means, colours, np.ones(len(means), bool), photo_a, photo_b, valid_b, K,
        np.eye(3), np.array([-1.0, 0.0, 0.0]),
    )  # fmt: skip
    np.testing.assert_allclose(change[:-1], 25 / 255, atol=0.01)
    assert np.all(change[-1] == 0)

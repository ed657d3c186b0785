"""Camera conventions: Blender <-> OpenCV poses and intrinsics, both ways."""

from __future__ import annotations

import numpy as np
import pytest
from videoscene_protocol.cameras import (
    blender_from_intrinsics,
    blender_to_opencv_c2w,
    focal_px_to_fov,
    fov_to_focal_px,
    intrinsics_from_blender,
    opencv_to_blender_c2w,
)


def test_known_numbers_50mm_on_full_frame_hd() -> None:
    K = intrinsics_from_blender(50, 36, 24, "AUTO", 1920, 1080)
    np.testing.assert_allclose(K, [[2666.6667, 0, 960], [0, 2666.6667, 540], [0, 0, 1]], rtol=1e-6)


def test_blender_camera_looking_down_minus_z_sees_plus_z_in_opencv() -> None:
    c2w = blender_to_opencv_c2w(np.eye(4))
    np.testing.assert_allclose(c2w[:3, 2], [0, 0, -1])  # optical axis = Blender's -Z
    np.testing.assert_allclose(c2w[:3, 1], [0, -1, 0])  # image down = Blender's -Y
    batch = np.stack([np.eye(4)] * 3)
    np.testing.assert_allclose(opencv_to_blender_c2w(blender_to_opencv_c2w(batch)), batch)


def test_portrait_auto_fit_uses_the_width_sensor_on_the_long_side() -> None:
    K = intrinsics_from_blender(
        50, 36, 24, "AUTO", 1080, 1920
    )  # AUTO fits the larger (vertical) side
    assert K[1, 1] == pytest.approx(50 / 36 * 1920)


@pytest.mark.parametrize("fit", ["AUTO", "HORIZONTAL", "VERTICAL"])
@pytest.mark.parametrize(
    ("res", "aspect"),
    [((1920, 1080), (1, 1)), ((720, 480), (1, 1)), ((1080, 1350), (1, 1)), ((1440, 1080), (4, 3))],
)
@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.1, -0.05)])
def test_intrinsics_round_trip(fit, res, aspect, shift) -> None:
    K = intrinsics_from_blender(35, 36, 24, fit, *res, *aspect, *shift)
    params = blender_from_intrinsics(K, *res, fit, 36, 24, *aspect)
    assert params.lens_mm == pytest.approx(35)
    assert (params.shift_x, params.shift_y) == pytest.approx(shift, abs=1e-9)
    K2 = intrinsics_from_blender(
        params.lens_mm, 36, 24, fit, *res, *aspect, params.shift_x, params.shift_y
    )
    np.testing.assert_allclose(K2, K, rtol=1e-9)


def test_pixel_aspect_makes_fy_differ_from_fx() -> None:
    K = intrinsics_from_blender(50, 36, 24, "HORIZONTAL", 1440, 1080, 4, 3)
    assert K[1, 1] / K[0, 0] == pytest.approx(4 / 3)


def test_positive_shift_y_moves_the_principal_point_up_the_image() -> None:
    K = intrinsics_from_blender(50, 36, 24, "AUTO", 1000, 500, shift_x=0.1, shift_y=0.1)
    assert K[0, 2] == pytest.approx(400) and K[1, 2] == pytest.approx(350)


def test_inconsistent_or_skewed_intrinsics_are_rejected() -> None:
    with pytest.raises(ValueError):
        blender_from_intrinsics([[100, 5, 50], [0, 100, 50], [0, 0, 1]], 100, 100)
    with pytest.raises(ValueError):
        blender_from_intrinsics([[100, 0, 50], [0, 150, 50], [0, 0, 1]], 100, 100)


def test_fov_focal_round_trip() -> None:
    assert fov_to_focal_px(90, 200) == pytest.approx(100)
    assert focal_px_to_fov(fov_to_focal_px(63.0, 720), 720) == pytest.approx(63.0)

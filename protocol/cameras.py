"""The one camera-convention module, shared by the backend and the Blender add-on.

Conventions
- OpenCV camera: x right, y down, z forward (the splat frame and every c2w on the wire).
- Blender camera: looks down its local -Z, Y up, X right. Converting a camera-to-world matrix
  between the two flips the camera's Y and Z axes: c2w_cv = c2w_blender @ diag(1, -1, -1, 1).
- Intrinsics are pixel K matrices for an image of res_x x res_y, principal point in continuous
  pixel coordinates (a centred camera has cx = res_x / 2, cy = res_y / 2).
- Blender's rules (BKE_camera_params_compute_viewplane): the fitted sensor dimension spans
  `viewfac` pixels, where viewfac = res_x for a horizontal fit and ycor * res_y for a vertical fit,
  with ycor = pixel_aspect_y / pixel_aspect_x; AUTO fits horizontally when
  res_x * pixel_aspect_x >= res_y * pixel_aspect_y. Shifts are in units of the fitted dimension.
Standard library + numpy only: this module is vendored into the Blender add-on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])
SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")


def blender_to_opencv_c2w(matrix_world: np.ndarray) -> np.ndarray:
    """Blender camera matrix_world (4x4 or N x 4 x 4) -> OpenCV camera-to-world."""
    return np.asarray(matrix_world, dtype=np.float64) @ _FLIP_YZ


def opencv_to_blender_c2w(c2w: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world (4x4 or N x 4 x 4) -> Blender camera matrix_world."""
    return np.asarray(c2w, dtype=np.float64) @ _FLIP_YZ


def _resolved_fit(
    sensor_fit: str, res_x: int, res_y: int, pixel_aspect_x: float, pixel_aspect_y: float
) -> str:
    if sensor_fit not in SENSOR_FITS:
        raise ValueError(f"sensor_fit must be one of {SENSOR_FITS}, got {sensor_fit!r}")
    if sensor_fit != "AUTO":
        return sensor_fit
    return "HORIZONTAL" if res_x * pixel_aspect_x >= res_y * pixel_aspect_y else "VERTICAL"


def _fit_geometry(
    sensor_fit: str,
    sensor_width_mm: float,
    sensor_height_mm: float,
    res_x: int,
    res_y: int,
    pixel_aspect_x: float,
    pixel_aspect_y: float,
) -> tuple[float, float, float]:
    """(sensor size used, viewfac in x-pixel units, ycor) as Blender computes them."""
    fit = _resolved_fit(sensor_fit, res_x, res_y, pixel_aspect_x, pixel_aspect_y)
    ycor = pixel_aspect_y / pixel_aspect_x
    if fit == "HORIZONTAL":
        # AUTO also uses sensor_width as "the" sensor size, even when it fits vertically.
        return sensor_width_mm, float(res_x), ycor
    sensor = sensor_width_mm if sensor_fit == "AUTO" else sensor_height_mm
    return sensor, ycor * res_y, ycor


def intrinsics_from_blender(
    lens_mm: float,
    sensor_width_mm: float,
    sensor_height_mm: float,
    sensor_fit: str,
    res_x: int,
    res_y: int,
    pixel_aspect_x: float = 1.0,
    pixel_aspect_y: float = 1.0,
    shift_x: float = 0.0,
    shift_y: float = 0.0,
) -> np.ndarray:
    """Blender camera settings -> 3x3 pixel intrinsics at res_x x res_y."""
    sensor, viewfac, ycor = _fit_geometry(
        sensor_fit, sensor_width_mm, sensor_height_mm, res_x, res_y, pixel_aspect_x, pixel_aspect_y
    )
    fx = lens_mm * viewfac / sensor
    fy = fx / ycor
    cx = res_x / 2.0 - shift_x * viewfac
    cy = res_y / 2.0 + shift_y * viewfac / ycor
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


@dataclass
class BlenderCameraParams:
    lens_mm: float
    shift_x: float
    shift_y: float
    sensor_fit: str
    sensor_width_mm: float
    sensor_height_mm: float


def blender_from_intrinsics(
    K: np.ndarray,
    res_x: int,
    res_y: int,
    sensor_fit: str = "AUTO",
    sensor_width_mm: float = 36.0,
    sensor_height_mm: float = 24.0,
    pixel_aspect_x: float = 1.0,
    pixel_aspect_y: float = 1.0,
) -> BlenderCameraParams:
    """3x3 pixel intrinsics -> Blender lens and shift for the given sensor and resolution."""
    K = np.asarray(K, dtype=np.float64)
    fx, fy, skew = K[0, 0], K[1, 1], K[0, 1]
    if abs(skew) > 1e-6 * fx or abs(K[1, 0]) > 1e-9:
        raise ValueError("Blender cameras have no skew; K[0, 1] must be 0")
    sensor, viewfac, ycor = _fit_geometry(
        sensor_fit, sensor_width_mm, sensor_height_mm, res_x, res_y, pixel_aspect_x, pixel_aspect_y
    )
    if not math.isclose(fy, fx / ycor, rel_tol=1e-3):
        raise ValueError(
            f"fx / fy = {fx / fy:.4f} does not match the pixel aspect {ycor:.4f}; set pixel_aspect_x/y accordingly"
        )
    return BlenderCameraParams(
        lens_mm=fx * sensor / viewfac,
        shift_x=(res_x / 2.0 - K[0, 2]) / viewfac,
        shift_y=(K[1, 2] - res_y / 2.0) * ycor / viewfac,
        sensor_fit=sensor_fit,
        sensor_width_mm=sensor_width_mm,
        sensor_height_mm=sensor_height_mm,
    )


def fov_to_focal_px(fov_deg: float, size_px: float) -> float:
    return size_px / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def focal_px_to_fov(focal_px: float, size_px: float) -> float:
    return math.degrees(2.0 * math.atan(size_px / (2.0 * focal_px)))

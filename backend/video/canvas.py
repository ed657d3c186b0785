"""The model canvas and the requested view: cover-and-crop intrinsics, the cut-back, photos.

The video model works on its own canvas (480x720 for the real model). A request of another size
or aspect is never stretched onto it. Instead the coarse input is rendered by a camera whose
canvas *covers* the requested view: same pose (same optical centre), intrinsics changed by one
uniform scale s and a shift, so the requested image rectangle is a centred sub-rectangle of the
canvas and the canvas shows a little more of the scene along the other axis:

    canvas pixel = s * (output pixel + offset)        (continuous pixel coordinates)
    K_canvas = A @ K,  A = [[s, 0, s dx], [0, s, s dy], [0, 0, 1]]

The offsets (dx, dy) are whole output pixels (one of them 0), so cutting the view back out is a
resize of the whole canvas by 1/s followed by an integer crop; a scene point lands on the same
output pixel as in a render at the requested size (tests/video/test_canvas.py checks 1 px).
Continuous pixel coordinates put pixel i's centre at i + 0.5 (as the renderers do); OpenCV's
resize uses the same centre convention for its scale mapping.

Reference photos are placed on the canvas of the frame they condition by the intrinsics-only
homography K_canvas @ inv(K_photo) (same optical centre assumed); what the photo does not cover
keeps the coarse render there.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np


@dataclass(frozen=True)
class CanvasFit:
    """Where a requested view of width x height sits on a canvas of canvas_width x canvas_height."""

    width: int
    height: int
    canvas_width: int
    canvas_height: int
    scale: Fraction  # canvas pixels per output pixel
    offset_x: int  # output pixels of canvas left of the view (canvas_width / s - width) / 2
    offset_y: int  # output pixels of canvas above the view

    @property
    def is_identity(self) -> bool:
        """The canvas is the requested view itself (same size, no offset)."""
        return self.scale == 1 and self.offset_x == 0 and self.offset_y == 0

    @property
    def affine(self) -> np.ndarray:
        """3x3: continuous output pixel -> continuous canvas pixel."""
        s = float(self.scale)
        return np.array([[s, 0.0, s * self.offset_x], [0.0, s, s * self.offset_y], [0.0, 0.0, 1.0]])

    def canvas_intrinsics(self, K: np.ndarray) -> np.ndarray:
        """Pixel intrinsics (..., 3, 3) at the requested size -> the covering canvas camera's."""
        return self.affine @ np.asarray(K, dtype=np.float64)

    def describe(self) -> dict:
        return {
            "canvas": [self.canvas_height, self.canvas_width],
            "scale": float(self.scale),
            "offset_px": [self.offset_x, self.offset_y],
            "view_on_canvas_px": [
                float(self.scale * self.offset_x),
                float(self.scale * self.offset_y),
                float(self.scale * self.width),
                float(self.scale * self.height),
            ],
        }

    def cut_back(self, canvas_frame: np.ndarray) -> np.ndarray:
        """A canvas frame (canvas_height, canvas_width, 3) uint8 -> the requested view at the
        requested size: resize by 1/s (area averaging when shrinking, Lanczos when enlarging),
        then an integer crop."""
        if canvas_frame.shape[:2] != (self.canvas_height, self.canvas_width):
            raise ValueError(
                f"canvas frame is {canvas_frame.shape[:2]}, expected "
                f"{(self.canvas_height, self.canvas_width)}"
            )
        if self.scale == 1:
            resized = canvas_frame
        else:
            factor = float(1 / self.scale)
            method = cv2.INTER_AREA if factor < 1 else cv2.INTER_LANCZOS4
            resized = cv2.resize(
                np.ascontiguousarray(canvas_frame),
                (0, 0),
                fx=factor,
                fy=factor,
                interpolation=method,
            )
        view = resized[
            self.offset_y : self.offset_y + self.height, self.offset_x : self.offset_x + self.width
        ]
        return np.ascontiguousarray(view)


def fit_canvas(width: int, height: int, canvas_width: int, canvas_height: int) -> CanvasFit:
    """The largest uniform scale at which the requested view fits inside the canvas, centred
    to the nearest whole output pixel (exact rational arithmetic: no rounding drift)."""
    if min(width, height, canvas_width, canvas_height) < 1:
        raise ValueError("sizes must be positive")
    if canvas_width * height <= canvas_height * width:  # the width binds; extra rows
        scale = Fraction(canvas_width, width)
        extra = canvas_height * width - height * canvas_width  # in output px x canvas_width
        return CanvasFit(
            width, height, canvas_width, canvas_height, scale, 0, extra // (2 * canvas_width)
        )
    scale = Fraction(canvas_height, height)
    extra = canvas_width * height - width * canvas_height
    return CanvasFit(
        width, height, canvas_width, canvas_height, scale, extra // (2 * canvas_height), 0
    )


def place_photo(
    photo: np.ndarray,
    photo_K: np.ndarray,
    canvas_K: np.ndarray,
    background: np.ndarray,
) -> tuple[np.ndarray, float]:
    """A reference photo on the canvas of the camera it conditions, by the intrinsics-only
    homography canvas_K @ inv(photo_K) (same optical centre; a uniform scale and shift for
    square pixels). Canvas pixels the photo does not cover keep `background` (the coarse
    render of that frame). Returns (canvas image, fraction of the canvas the photo covers)."""
    canvas_height, canvas_width = background.shape[:2]
    homography = np.asarray(canvas_K, np.float64) @ np.linalg.inv(np.asarray(photo_K, np.float64))
    source = np.ascontiguousarray(photo)
    # Shrinking: average over each canvas pixel's footprint first (warpAffine only
    # interpolates), then warp with what remains of the scale.
    shrink_x, shrink_y = homography[0, 0], homography[1, 1]
    if min(shrink_x, shrink_y) < 1.0:
        fx, fy = min(shrink_x, 1.0), min(shrink_y, 1.0)
        source = cv2.resize(source, (0, 0), fx=fx, fy=fy, interpolation=cv2.INTER_AREA)
        # Given fx/fy, cv2.resize maps continuous coordinates by exactly those factors.
        homography = homography @ np.diag([1.0 / fx, 1.0 / fy, 1.0])
    to_index = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    from_index = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    matrix = (to_index @ homography @ from_index)[:2]
    warped = cv2.warpAffine(
        source,
        matrix,
        (canvas_width, canvas_height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    covered = _covered(homography, source.shape[1], source.shape[0], canvas_width, canvas_height)
    out = np.where(covered[..., None], warped, background)
    return out.astype(np.uint8), float(covered.mean())


def _covered(
    homography: np.ndarray, width: int, height: int, canvas_width: int, canvas_height: int
) -> np.ndarray:
    """Canvas pixels whose centre maps inside the (resized) photo."""
    inverse = np.linalg.inv(homography)
    xs = np.arange(canvas_width) + 0.5
    ys = np.arange(canvas_height) + 0.5
    px = inverse[0, 0] * xs[None, :] + inverse[0, 1] * ys[:, None] + inverse[0, 2]
    py = inverse[1, 0] * xs[None, :] + inverse[1, 1] * ys[:, None] + inverse[1, 2]
    return (px >= 0) & (px <= width) & (py >= 0) & (py <= height)


def pose_offset(c2w_a: np.ndarray, c2w_b: np.ndarray) -> tuple[float, float]:
    """(distance between the camera centres, rotation angle between them in degrees)."""
    a, b = np.asarray(c2w_a, np.float64), np.asarray(c2w_b, np.float64)
    distance = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    relative = a[:3, :3].T @ b[:3, :3]
    cosine = np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)
    return distance, float(np.degrees(np.arccos(cosine)))

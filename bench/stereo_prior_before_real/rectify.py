# Copied from videoscene_backend.priors.stereo.rectify at 4c100db (issue #35's in-run baseline for
# bench/real_photos.py; imports made absolute). Not used by the backend.
"""Rectification that keeps the photos' focal length.

OpenCV's stereoRectify picks the rectifying rotation (and whether the baseline is mostly
horizontal or vertical); its projection matrices are not used, because their focal length is
chosen to fit the rotated image into the original size, which shrinks it and leaves one-pixel
holes when rectified depth is mapped back to the photo. Here both views share K_rect: the
original focal length and a canvas just large enough for both rotated photos (at most
MAX_CANVAS_GROWTH times their size). The canvas is then oriented (transposed for a vertical
baseline, mirrored when view 1 sits on the -x side) so that block matching runs along rows with
view 0 as the left image: disparity d = x_0 - x_1 >= 0 and depth along the rectified axis
z = focal * baseline / d.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

MAX_CANVAS_GROWTH = 1.5


@dataclass
class Rectification:
    K: np.ndarray  # (3, 3) the photos' intrinsics (both views)
    K_rect: np.ndarray  # (3, 3) the shared rectified intrinsics (same focal length)
    rotations: tuple[np.ndarray, np.ndarray]  # camera frame -> rectified frame, per view
    canvas: tuple[int, int]  # (width, height) of the rectified canvas before orientation
    transpose: bool  # the baseline is mostly vertical: match along columns
    mirror: bool  # view 1 is on the -x side: mirror so that disparities are positive
    baseline: float
    R: np.ndarray  # the relative pose, x_1 = R x_0 + t
    t: np.ndarray
    _maps: dict = field(default_factory=dict, repr=False)

    @property
    def focal(self) -> float:
        return float(self.K_rect[0, 0])

    @property
    def oriented_size(self) -> tuple[int, int]:
        width, height = self.canvas
        return (height, width) if self.transpose else (width, height)

    def orient_points(self, xy: np.ndarray) -> np.ndarray:
        """Rectified canvas coordinates (..., 2) -> oriented coordinates."""
        out = xy[..., ::-1] if self.transpose else xy.copy()
        if self.mirror:
            out = out.copy()
            out[..., 0] = self.oriented_size[0] - 1 - out[..., 0]
        return out

    def rectified_coords(self, view: int, xy: np.ndarray) -> np.ndarray:
        """Photo pixels (N, 2) of a view -> oriented rectified coordinates (N, 2)."""
        H = self.K_rect @ self.rotations[view] @ np.linalg.inv(self.K)
        mapped = cv2.perspectiveTransform(xy.reshape(-1, 1, 2).astype(np.float64), H)
        return self.orient_points(mapped.reshape(-1, 2))

    def warp(self, view: int, image: np.ndarray) -> np.ndarray:
        """A photo resampled onto the oriented rectified canvas (zero outside the photo)."""
        if view not in self._maps:
            map_x, map_y = cv2.initUndistortRectifyMap(
                self.K, None, self.rotations[view], self.K_rect, self.canvas, cv2.CV_32FC1
            )
            self._maps[view] = (self._orient_map(map_x), self._orient_map(map_y))
        map_x, map_y = self._maps[view]
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def coverage(self, view: int, size: tuple[int, int]) -> np.ndarray:
        """True where the oriented canvas shows the photo of `size` (width, height)."""
        ones = np.full((size[1], size[0]), 255, np.uint8)
        return self.warp(view, ones) == 255

    def _orient_map(self, grid: np.ndarray) -> np.ndarray:
        if self.transpose:
            grid = grid.T
        if self.mirror:
            grid = grid[:, ::-1]
        return np.ascontiguousarray(grid)

    def rect_depth(self, disparity: np.ndarray) -> np.ndarray:
        """Depth along the rectified optical axis for disparities (px) > 0."""
        return self.focal * self.baseline / disparity


def rectify(K: np.ndarray, R: np.ndarray, t: np.ndarray, size: tuple[int, int]) -> Rectification:
    """size = (width, height) of both photos; x_1 = R x_0 + t."""
    R1, _, _, _, _, _, _ = cv2.stereoRectify(
        K, np.zeros(5), K, np.zeros(5), size, R, t.reshape(3, 1), alpha=0
    )
    R2 = R1 @ R.T  # view 1's rectifying rotation: the same rectified orientation as view 0's
    centre1 = R1 @ (-R.T @ t)  # view 1's centre in the rectified frame
    transpose = abs(centre1[1]) > abs(centre1[0])
    along = centre1[1] if transpose else centre1[0]
    focal = float(K[0, 0])
    width, height = size
    border = np.array(
        [[x, y] for x in np.linspace(0, width, 9) for y in (0, height)]
        + [[x, y] for y in np.linspace(0, height, 9) for x in (0, width)],
        np.float64,
    )
    corners = []
    for rotation in (R1, R2):
        H = np.diag([focal, focal, 1.0]) @ rotation @ np.linalg.inv(K)
        corners.append(cv2.perspectiveTransform(border.reshape(-1, 1, 2), H).reshape(-1, 2))
    low, high = np.min(corners, axis=(0, 1)), np.max(corners, axis=(0, 1))
    # Never more than MAX_CANVAS_GROWTH times the photo: a strongly rotated pair is cropped.
    limit = np.array(size) * MAX_CANVAS_GROWTH
    centre = (low + high) / 2
    low, high = np.maximum(low, centre - limit / 2), np.minimum(high, centre + limit / 2)
    K_rect = np.array([[focal, 0, -np.floor(low[0])], [0, focal, -np.floor(low[1])], [0, 0, 1]])
    canvas = (int(np.ceil(high[0]) - np.floor(low[0])), int(np.ceil(high[1]) - np.floor(low[1])))
    return Rectification(
        K=K,
        K_rect=K_rect,
        rotations=(R1, R2),
        canvas=canvas,
        transpose=bool(transpose),
        mirror=bool(along < 0),
        baseline=float(np.linalg.norm(centre1)),
        R=R,
        t=t.ravel(),
    )

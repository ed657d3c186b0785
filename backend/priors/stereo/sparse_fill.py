"""Depth from the pose's own matches, for pairs where dense block matching collapses.

On convergent, wide-baseline pairs (the camera circling an object, a facade seen from two
angles) the rectified images are strongly warped and block matching finds little, although
the pose is right. The SIFT inliers still triangulate well: their inverse depths, spread over
each photo by normalised convolution at shrinking scales (a coarse estimate everywhere,
finer ones where matches are dense), give every pixel a smooth depth instead of a refusal.
"""

from __future__ import annotations

import cv2
import numpy as np

from .splats import SIGMA_PX, PixelSplats, hidden_from_a, pixel_grid, rotate

SCALES_PX = (128.0, 64.0, 32.0, 16.0, 8.0)  # Gaussian sigmas, coarse to fine
SUPPORT = 0.05  # a scale takes over where its weight reaches this share of one match's peak
MAX_REPROJECTION_PX = 2.0
OPACITY = 0.95  # below view-matched Gaussians' 0.999: a guess, not a measurement


def triangulate(
    pts_a: np.ndarray, pts_b: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) in A's frame seen in front of both cameras within MAX_REPROJECTION_PX,
    and which matches they came from."""
    P0 = K @ np.c_[np.eye(3), np.zeros(3)]
    P1 = K @ np.c_[R, t]
    homogeneous = cv2.triangulatePoints(
        P0, P1, pts_a.T.astype(np.float64), pts_b.T.astype(np.float64)
    )
    points = (homogeneous[:3] / homogeneous[3]).T
    in_b = points @ R.T + t
    good = (points[:, 2] > 1e-6) & (in_b[:, 2] > 1e-6)
    for P, pts in ((P0, pts_a), (P1, pts_b)):
        projected = np.c_[points, np.ones(len(points))] @ P.T
        pixel = projected[:, :2] / np.where(np.abs(projected[:, 2:]) > 1e-12, projected[:, 2:], 1)
        good &= np.linalg.norm(pixel - pts, axis=1) < MAX_REPROJECTION_PX
    return points[good], good


def spread_inverse_depth(pixels: np.ndarray, inverse_depth: np.ndarray, shape) -> np.ndarray:
    """A dense inverse-depth map (H, W) from values at a few pixels (normalised convolution)."""
    height, width = shape
    values, weights = np.zeros(shape), np.zeros(shape)
    cols = np.clip(np.round(pixels[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.round(pixels[:, 1]).astype(int), 0, height - 1)
    np.add.at(values, (rows, cols), inverse_depth)
    np.add.at(weights, (rows, cols), 1.0)
    dense = np.full(shape, float(np.median(inverse_depth)))
    for sigma in SCALES_PX:
        numerator = cv2.GaussianBlur(values, (0, 0), sigma)
        denominator = cv2.GaussianBlur(weights, (0, 0), sigma)
        peak = 1.0 / (2 * np.pi * sigma * sigma)
        supported = denominator > SUPPORT * peak
        dense[supported] = numerator[supported] / denominator[supported]
    return dense


def depth_splats(photo: np.ndarray, K: np.ndarray, depth: np.ndarray, R, centre) -> PixelSplats:
    """One Gaussian per pixel at its z-depth in its own camera, in A's frame (R: camera -> A)."""
    height, width = photo.shape[:2]
    pixels = pixel_grid(width, height)
    rays = np.ones((len(pixels), 3))
    rays[:, 0] = (pixels[:, 0] - K[0, 2]) / K[0, 0]
    rays[:, 1] = (pixels[:, 1] - K[1, 2]) / K[1, 1]
    z = depth.ravel()
    points = rotate(R, rays * z[:, None]) + centre
    n = len(pixels)
    return PixelSplats(
        means=points.astype(np.float32),
        colours=photo.reshape(-1, 3).astype(np.float32) / 255.0,
        sigmas=(SIGMA_PX * z / float(K[0, 0])).astype(np.float32),
        opacities=np.full(n, OPACITY, np.float32),
        confidence=np.zeros(n, np.float32),
        filled=np.ones(n, bool),
        far=np.zeros(n, bool),
    )


def sparse_pair(
    left, right, right_valid, K, R, t, pts_a, pts_b
) -> tuple[PixelSplats, PixelSplats, int] | None:
    """Photo A's Gaussians and photo B's that A does not show, at depths spread from the
    triangulated matches; None when too few matches triangulate."""
    points, good = triangulate(pts_a, pts_b, K, R, t)
    if len(points) < 20:
        return None
    shape = left.shape[:2]
    depth_a = 1.0 / spread_inverse_depth(pts_a[good], 1.0 / points[:, 2], shape)
    in_b = points @ R.T + t
    depth_b = 1.0 / spread_inverse_depth(pts_b[good], 1.0 / in_b[:, 2], right.shape[:2])
    splats_a = depth_splats(left, K, depth_a, np.eye(3), np.zeros(3))
    splats_b = depth_splats(right, K, depth_b, R.T, -R.T @ t)
    new_b = hidden_from_a(splats_b.means, depth_a, K) & right_valid.ravel()
    return splats_a, splats_b.take(new_b), len(points)

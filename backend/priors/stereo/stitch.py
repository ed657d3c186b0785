"""A turning camera's pair as ONE scene: both photos on a common sphere around camera A.

When the camera mostly turned, parallax is too small to give depth, and stereo would give
noise. Each photo is then a picture of the directions it saw: photo A's pixels lie on a sphere
of radius `depth` around A's centre, and photo B's pixels that photo A does not show go onto the
same sphere, along B's own rays (B's centre is one unit, the baseline, from A's: far less than
the radius). Seen from anywhere between the two cameras the pictures join into one panorama,
never two copies side by side. The radius is the depth the measured residual parallax implies
(depth = focal / parallax at a baseline of 1), bounded to a plausible range.
"""

from __future__ import annotations

import numpy as np

from .splats import SIGMA_PX, PixelSplats, hidden_from_a, pixel_grid, rotate

OPACITY = 0.999
PARALLAX_RANGE_PX = (0.25, 2.0)  # below: depth unmeasurable (radius 4 f); above: not turning


def sphere_radius(focal: float, parallax_px: float) -> float:
    return focal / float(np.clip(parallax_px, *PARALLAX_RANGE_PX))


def sphere_splats(
    photo: np.ndarray, K: np.ndarray, radius: float, R: np.ndarray, centre: np.ndarray
) -> PixelSplats:
    """One Gaussian per pixel of a photo taken from `centre` with camera-to-A rotation R, on
    the sphere of `radius` (its distance along each ray), in A's camera frame."""
    height, width = photo.shape[:2]
    pixels = pixel_grid(width, height)
    rays = np.ones((len(pixels), 3))
    rays[:, 0] = (pixels[:, 0] - K[0, 2]) / K[0, 0]
    rays[:, 1] = (pixels[:, 1] - K[1, 2]) / K[1, 1]
    length = np.linalg.norm(rays, axis=1)
    points = rotate(R, rays * (radius / length)[:, None]) + centre
    n = len(pixels)
    return PixelSplats(
        means=points.astype(np.float32),
        colours=photo.reshape(-1, 3).astype(np.float32) / 255.0,
        # the pixel's footprint at its distance along the ray, as splats.py sizes them
        sigmas=np.full(n, SIGMA_PX * radius / float(K[0, 0]), np.float32)
        * length.astype(np.float32),
        opacities=np.full(n, OPACITY, np.float32),
        confidence=np.zeros(n, np.float32),
        filled=np.ones(n, bool),
        far=np.zeros(n, bool),
    )


def stitched_pair(
    left: np.ndarray,
    right: np.ndarray,
    right_valid: np.ndarray,
    K: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    parallax_px: float,
) -> tuple[PixelSplats, PixelSplats, float]:
    """Photo A's Gaussians, photo B's that A does not show (both on one sphere), the radius.
    `right` is photo B in A's camera (K), x_1 = R x_0 + t."""
    radius = sphere_radius(float(K[0, 0]), parallax_px)
    splats_a = sphere_splats(left, K, radius, np.eye(3), np.zeros(3))
    centre_b = -R.T @ t
    splats_b = sphere_splats(right, K, radius, R.T, centre_b)
    depth_a = splats_a.means[:, 2].reshape(left.shape[:2])
    new_b = hidden_from_a(splats_b.means, depth_a, K) & right_valid.ravel()
    return splats_a, splats_b.take(new_b), radius

"""Each Gaussian keeps photo A's look from camera A and takes photo B's from camera B.

The scene's geometry comes from photo A (and from B where A saw nothing), so seen from B it
shows photo A's colours: in photo A's exposure, and where depth is off, a near object of photo A
still standing where photo B shows what lies behind it. The two photos are two measurements of
each surface, one per direction, and a degree-1 spherical-harmonic term carries the second. The
term is zero along camera A's view direction, so photo A, and the DC colour that Blender's point
cloud shows, are unchanged; from camera B a Gaussian shows its colour moved by what photo B
differs by there; views between the cameras blend the two by where they stand.

Only the coarse difference is carried: both photos low-passed (LOW_PASS_SIGMA_PX), and only
where photo B sees the Gaussian (a depth test against what the scene puts in front of it at B).
The term is linear in the view direction, so views past B carry the change on: a fine texture a
pixel off between the photos, carried whole, turned into coloured noise on the rendered benches'
held-out views (which lie past B: -4.0, -0.6 and -2.3 dB), and an occluder's colour painted on
what it hides smeared at occlusions. Coarse and depth-tested, those views gain 0.1-0.8 dB, the
real-photo bench's views between the cameras 0.34 dB, and photo B re-rendered at its own camera
16.8 -> 22.2 dB (docs/priors.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from ...scene.gaussians import SH_C0
from .splats import pixel_at, project, rotate

# gsplat's degree-1 constant: colour += SH_C1 * (-y * sh1 + z * sh2 - x * sh3) for the unit
# direction (x, y, z) from the camera to the Gaussian.
SH_C1 = 0.4886025119029199
# The photos' differences are carried at this scale (Gaussian blur, pixels of the working size):
# 4 px scored the same on the rendered benches and 0.05 dB lower on the real photos.
LOW_PASS_SIGMA_PX = 2.0
# A Gaussian counts as seen from B when it is at most this much (relative) behind the nearest
# opaque Gaussian on its pixel of photo B.
DEPTH_TOLERANCE = 0.03
# The largest change of a colour channel (0-1) between the views from A and from B: views past
# B carry the change on, so a large one (a near object of photo A where photo B shows sky)
# turned white a camera further along.
MAX_CHANGE = 0.3
# Below this angle between the two cameras' views of a Gaussian (radians) it has no parallax to
# carry a second colour (points near infinity): it shows photo A's colour from everywhere.
MIN_VIEW_ANGLE = 1e-4
REMAP_ROW = 1024  # sample_bilinear's map width


def sh1_basis(directions: np.ndarray) -> np.ndarray:
    """The three degree-1 basis functions (gsplat's order and signs) at unit directions (N, 3)."""
    return SH_C1 * np.stack([-directions[:, 1], directions[:, 2], -directions[:, 0]], axis=1)


def sample_bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """image (H, W, C) at (OpenCV-convention) pixel coordinates u, v (N,), the border repeated
    outside. The coordinates go to cv2.remap as a map of rows of REMAP_ROW (its maps must have
    fewer than 32767 rows and columns)."""
    count = len(u)
    rows = max(1, -(-count // REMAP_ROW))
    maps = [
        np.pad(c.astype(np.float32), (0, rows * REMAP_ROW - count)).reshape(rows, REMAP_ROW)
        for c in (u, v)
    ]
    sampled = cv2.remap(image, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(rows * REMAP_ROW, -1)[:count]


def colours_seen(
    projected: tuple[np.ndarray, ...], photo: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The photo's colour (0-1) at each point's projection (`project`'s u, v, z, in_front in
    the photo's camera, OpenCV's convention) and where the photo shows it (in front, inside,
    valid)."""
    u, v, _, in_front = projected
    height, width = valid.shape
    rows, cols, inside = pixel_at(u, v, in_front, width, height)
    # bilinear sampling needs both neighbours inside
    seen = inside & valid[rows, cols] & (u >= 0) & (v >= 0) & (u <= width - 1) & (v <= height - 1)
    colours = np.zeros((len(u), 3), np.float32)
    colours[seen] = sample_bilinear(photo.astype(np.float32) / 255.0, u[seen], v[seen])
    return colours, seen


def nearest_in_front(
    projected: tuple[np.ndarray, ...], opaque: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Whether each point (`project`'s u, v, z, in_front) is at most DEPTH_TOLERANCE behind the
    nearest opaque point on its pixel (a z-buffer of the points themselves, each pixel's depth
    the nearest of its 3x3 neighbourhood so that the gaps between points do not let hidden ones
    through)."""
    u, v, z, in_front = projected
    height, width = shape
    rows, cols, inside = pixel_at(u, v, in_front, width, height)
    buffer = np.full(shape, np.inf)
    front = inside & opaque
    np.minimum.at(buffer, (rows[front], cols[front]), z[front])
    buffer = cv2.erode(np.minimum(buffer, 1e30).astype(np.float32), np.ones((3, 3), np.uint8))
    return inside & (z <= buffer[rows, cols] * (1 + DEPTH_TOLERANCE))


def change_seen_from_b(
    means: np.ndarray,
    colours: np.ndarray,
    opaque: np.ndarray,
    photo_a: np.ndarray,
    photo_b: np.ndarray,
    valid_b: np.ndarray,
    K: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """How much each Gaussian's colour (0-1, (N, 3)) should change from camera A's view to
    camera B's: photo B low-passed at its projection minus photo A low-passed at its own
    (its colour where photo A does not show it); zero where photo B does not see it. photo_b is
    photo B in a camera at B's pose with photo A's K (OpenCV convention), x_B = R x_A + t."""
    low_a, low_b = (cv2.GaussianBlur(p, (0, 0), LOW_PASS_SIGMA_PX) for p in (photo_a, photo_b))
    in_b = project(rotate(R, means.astype(np.float64)) + t, K)
    seen_b, seen = colours_seen(in_b, low_b, valid_b)
    seen &= nearest_in_front(in_b, opaque, valid_b.shape)
    seen_a, in_a = colours_seen(project(means, K), low_a, np.ones(photo_a.shape[:2], bool))
    seen_a[~in_a] = colours[~in_a]
    return np.where(seen[:, None], seen_b - seen_a, 0.0).astype(np.float32)


def two_view_sh(
    means: np.ndarray, colours: np.ndarray, change: np.ndarray, centre_b: np.ndarray
) -> np.ndarray:
    """Degree-1 spherical harmonics (N, 4, 3) in the scene's convention (colour = SH_C0 * sh0 +
    0.5 + the degree-1 terms) that show `colours` from camera A (at the origin) and `colours` +
    `change` (each channel's change capped at MAX_CHANGE) from camera B (at centre_b)."""
    points = means.astype(np.float64)
    towards_a, towards_b = (
        v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        for v in (points, points - centre_b)
    )
    basis_a = sh1_basis(towards_a)
    step = sh1_basis(towards_b) - basis_a
    # The coefficients lie along the part of the step orthogonal to A's basis vector: the term
    # is then zero seen from A, and it is the smallest such term that reaches the change from B.
    along = step - (np.sum(step * basis_a, axis=1) / SH_C1**2)[:, None] * basis_a
    reach = np.sum(along * step, axis=1)
    parallax = np.linalg.norm(towards_b - towards_a, axis=1) >= MIN_VIEW_ANGLE
    scale = np.where(parallax, 1.0 / np.where(parallax, reach, 1.0), 0.0)
    capped = np.clip(change.astype(np.float64), -MAX_CHANGE, MAX_CHANGE)
    sh = np.empty((len(points), 4, 3), np.float32)
    sh[:, 0] = (colours - 0.5) / SH_C0
    sh[:, 1:] = (along * scale[:, None])[:, :, None] * capped[:, None, :]
    return sh

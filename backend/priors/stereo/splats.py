"""One Gaussian per pixel of view 0, plus view 1's pixels that view 0 does not see.

Each Gaussian sits on its own pixel's ray (so at its reference camera it projects exactly onto
the pixel centre and takes that pixel's colour: no resampling; colours.py then fits view 0's),
at the depth of its disparity.
Its size is the pixel's footprint at that depth times SIGMA_PX, chosen for the renderers' rules
(gsplat's: alpha = min(0.999, opacity * exp(-r^2 / 2 sigma^2)) plus a 0.3 px^2 screen-space
blur): neighbours overlap enough that the reference view has no gaps, little enough that it is
not blurred. Opacity follows the confidence. Pixels whose disparity is below FAR_DISPARITY_PX
(sky, distant walls: depth beyond what the baseline resolves) go onto a far shell at the depth
of that disparity instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .disparity import DisparityMap
from .rectify import Rectification

SIGMA_PX = 0.5  # Gaussian sigma in pixels of its reference camera
OPACITY_FILLED = 0.9  # opacity of a pixel with no confidence; confident pixels reach 0.999
OPACITY_CONFIDENT = 0.999
FAR_DISPARITY_PX = 1.0
# A view-1 pixel is new (view 0 does not see it) when, seen from view 0, it lies behind view 0's
# surface by more than this disparity, or outside view 0's photo.
DISOCCLUSION_DISPARITY_PX = 1.5
# Relative depth by which view 1's crack fillers sit behind view 0's surface: enough to stay
# behind view 0's Gaussians at photo A's camera despite depth noise, small in parallax.
CRACK_PUSH = 0.03
# View 1's Gaussians inside photo A's frame must lie at least this much (relative depth) behind
# view 0's surface at the pixel they project to: anything nearer would cover photo A there.
HIDDEN_MARGIN = 0.01
# How far (in its sigmas) a Gaussian of opacity 0.9 still draws: its alpha falls below the
# renderers' 1/255 there.
FOOTPRINT_SIGMAS = 3.3
MAX_GAUSSIANS = (
    524_288  # NoPoSplat's count (2 x 512^2): what the renderers and importer are sized for
)


@dataclass
class PixelSplats:
    means: np.ndarray  # (N, 3) float32 in view 0's camera frame
    colours: np.ndarray  # (N, 3) float32 in [0, 1]
    sigmas: np.ndarray  # (N,) float32
    opacities: np.ndarray  # (N,) float32
    confidence: np.ndarray  # (N,) float32
    filled: np.ndarray  # (N,) bool
    far: np.ndarray  # (N,) bool

    def take(self, keep: np.ndarray) -> PixelSplats:
        return PixelSplats(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))

    @staticmethod
    def concatenate(parts: list[PixelSplats]) -> PixelSplats:
        fields = PixelSplats.__dataclass_fields__
        return PixelSplats(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


def rotate(matrix: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """matrix @ v for each row v of (N, 3), elementwise: a BLAS call for this shape starts
    threads, which stall for tens of milliseconds on a busy machine."""
    return sum(vectors[:, i : i + 1] * matrix[:, i] for i in range(3))


def pixel_grid(width: int, height: int) -> np.ndarray:
    """(H*W, 2) pixel centres, row-major. OpenCV's convention: pixel (i, j) is centred at (j, i)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def view_splats(
    view: int, photo: np.ndarray, disparity: DisparityMap, rect: Rectification
) -> PixelSplats:
    """One Gaussian per pixel of `photo` (view 0 or 1), in view 0's camera frame."""
    height, width = photo.shape[:2]
    pixels = pixel_grid(width, height)
    coords = rect.rectified_coords(view, pixels).astype(np.float32).reshape(height, width, 2)
    map_x, map_y = np.ascontiguousarray(coords[..., 0]), np.ascontiguousarray(coords[..., 1])

    def sample(image: np.ndarray) -> np.ndarray:  # nearest: no depth blended across edges
        return cv2.remap(
            image,
            map_x,
            map_y,
            cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_REPLICATE,
        ).ravel()

    d = sample(disparity.disparity).astype(np.float64)
    confidence = sample(disparity.confidence)
    filled = sample(disparity.filled.astype(np.uint8)) > 0
    far = d < FAR_DISPARITY_PX
    K = rect.K
    rays = np.ones((len(pixels), 3))  # z = 1 in the camera
    rays[:, 0] = (pixels[:, 0] - K[0, 2]) / K[0, 0]
    rays[:, 1] = (pixels[:, 1] - K[1, 2]) / K[1, 1]
    rect_z = rays @ rect.rotations[view][2]
    depth = rect.rect_depth(np.maximum(d, FAR_DISPARITY_PX)) / rect_z
    points = rays * depth[:, None]
    if view == 1:  # view 1's camera frame -> view 0's: x0 = R^T (x1 - t)
        points = rotate(rect.R.T, points - rect.t)
    focal = float(rect.K[0, 0])
    opacity = OPACITY_FILLED + (OPACITY_CONFIDENT - OPACITY_FILLED) * confidence
    return PixelSplats(
        means=points.astype(np.float32),
        colours=photo.reshape(-1, 3).astype(np.float32) / 255.0,
        sigmas=(SIGMA_PX * depth / focal).astype(np.float32),
        opacities=opacity.astype(np.float32),
        confidence=confidence.astype(np.float32),
        filled=filled,
        far=far,
    )


def project(points: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, ...]:
    """Points (N, 3) in a camera's frame -> their pixel coordinates u, v in that camera (K),
    their depth z (1 where not in front, so that dividing by it is safe) and which are in front."""
    projected = rotate(K, points.astype(np.float64))
    in_front = projected[:, 2] > 1e-9
    z = np.where(in_front, projected[:, 2], 1.0)
    return projected[:, 0] / z, projected[:, 1] / z, z, in_front


def pixel_of(points: np.ndarray, K: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """The pixel each point projects to (rows, cols, clipped to the image), whether it lies
    inside the image and in front of the camera, its depth z and whether it is in front."""
    u, v, z, in_front = project(points, K)
    return (*pixel_at(u, v, in_front, width, height), z, in_front)


def pixel_at(
    u: np.ndarray, v: np.ndarray, in_front: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, ...]:
    """The pixel at projected coordinates u, v (rows, cols, clipped to the image) and whether
    it lies inside the image and in front of the camera."""
    cols, rows = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
    inside = in_front & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    return np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1), inside


def disoccluded(
    splats_b: PixelSplats, depth_a: np.ndarray, far_a: np.ndarray, K: np.ndarray
) -> np.ndarray:
    """View 1's Gaussians that view 0 does not see: outside its photo or behind its surface."""
    height, width = depth_a.shape
    rows, cols, inside, z, in_front = pixel_of(splats_b.means, K, width, height)
    surface = depth_a[rows, cols]
    focal = float(K[0, 0])
    # Compared in disparity (focal / depth, baseline 1): the matcher's own unit of error.
    behind = focal / surface - focal / z > DISOCCLUSION_DISPARITY_PX
    # Both far: the shell is one surface, so view 1's sky inside view 0's photo is a duplicate.
    duplicate_far = splats_b.far & far_a[rows, cols]
    return in_front & (~inside | (behind & ~duplicate_far))


def hidden_from_a(means_b: np.ndarray, depth_a: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Which of view 1's Gaussians photo A's camera cannot see in front of view 0's surface:
    those outside photo A's frame or behind its surface there. The rest (crack fillers on noisy
    depth, mismatched pixels of photo B) would be drawn over photo A at its own camera: photo
    B's gravel over A's lawn, specks in A's sky."""
    height, width = depth_a.shape
    rows, cols, inside, z, in_front = pixel_of(means_b, K, width, height)
    return ~in_front | ~inside | (z >= depth_a[rows, cols] * (1.0 + HIDDEN_MARGIN))


def outside_a(splats: PixelSplats, shape: tuple[int, int], K: np.ndarray) -> np.ndarray:
    """Which Gaussians (in view 0's frame) photo A's camera does not draw into its frame: behind
    the camera, or projecting outside the frame by more than FOOTPRINT_SIGMAS of their projected
    sigmas (a Gaussian near A's camera plane projects far out, its footprint over the photo)."""
    height, width = shape
    u, v, z, in_front = project(splats.means, K)
    reach = FOOTPRINT_SIGMAS * float(K[0, 0]) * splats.sigmas / z
    away = (u < -0.5 - reach) | (u > width - 0.5 + reach)
    away |= (v < -0.5 - reach) | (v > height - 0.5 + reach)
    return ~in_front | away


def uncovered(
    means_a: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, width: int, height: int
) -> np.ndarray:
    """View 1's pixels (row-major) that no view-0 Gaussian lands on when seen from view 1: where
    view 0's surface is stretched (grazing or nearer to view 1) or its depth is noisy, its
    Gaussians leave cracks there, and view 1's own Gaussians must fill them."""
    points = rotate(R, means_a.astype(np.float64)) + t
    rows, cols, inside, _, _ = pixel_of(points, K, width, height)
    index = rows[inside] * width + cols[inside]
    return np.bincount(index, minlength=width * height) == 0


def behind(splats: PixelSplats, selected: np.ndarray, centre: np.ndarray) -> None:
    """Move the selected Gaussians of a view a little further along their rays from the view's
    camera centre: crack fillers then show through view 0's gaps but stay behind view 0's own
    (nearly opaque) Gaussians, which keep photo A sharp at its camera."""
    offset = splats.means[selected] - centre.astype(np.float32)
    splats.means[selected] = centre.astype(np.float32) + offset * np.float32(1 + CRACK_PUSH)
    splats.sigmas[selected] *= np.float32(1 + CRACK_PUSH)


def cap_index(confidence: np.ndarray, first: int, limit: int = MAX_GAUSSIANS) -> np.ndarray:
    """Which of the Gaussians (in order) `cap` keeps: the first `first` (view 0's), then the
    most confident of the rest, earlier ones first among equals."""
    if len(confidence) <= limit:
        return np.arange(len(confidence))
    rest = np.argsort(-confidence[first:], kind="stable")[: max(0, limit - first)] + first
    return np.r_[np.arange(min(first, limit)), np.sort(rest)]


def cap(splats: PixelSplats, first: int, limit: int = MAX_GAUSSIANS) -> PixelSplats:
    """At most `limit` Gaussians: the first `first` (view 0's) are kept, then the most
    confident of the rest."""
    if len(splats.means) <= limit:
        return splats
    return splats.take(cap_index(splats.confidence, first, limit))

# Copied from videoscene_backend.priors.stereo.photos at 4c100db (issue #35's in-run baseline for
# bench/real_photos.py; imports made absolute). Not used by the backend.
"""Both photos at one working size, each with its own intrinsics, and the refusals that need no
matching.

Policy for photos of different sizes, aspects or fields of view (a 4032x3024 beside a
3024x4032, two cameras): each photo is scaled to WORK_LONG_SIDE px on its long side, keeping
its aspect, and gets its own pinhole K from its own horizontal field of view (principal point
at the centre). The matching runs in photo A's camera: photo B is re-imaged into a virtual
camera at B's position and orientation with A's K and size, which for a pinhole is exact (the
same centre and axes, so no depth is involved: an affine scaling about the principal points,
then a crop or a black border that a validity mask keeps out of the matching and the splats).
Photo B's reference camera keeps B's own K and size, so what is sent to Blender is each photo's
own camera; nothing is stretched and no field of view is borrowed from the other photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from videoscene_protocol.cameras import fov_to_focal_px
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .errors import prior_failed

WORK_LONG_SIDE = 640
MIN_SIDE = 64


@dataclass
class WorkingPair:
    left: np.ndarray  # photo A at its working size
    right: np.ndarray  # photo B re-imaged into A's camera (A's size and K)
    right_valid: np.ndarray  # bool (H, W): where photo B shows in that camera
    K: np.ndarray  # A's intrinsics (renderers' convention: pixel (i, j) spans [j, j+1] x [i, i+1])
    own_right: np.ndarray  # photo B at its own working size
    own_K_right: np.ndarray  # and its own intrinsics

    @property
    def same_camera(self) -> bool:
        """Photo B needed no re-imaging (same size and field of view as A)."""
        return self.own_right.shape == self.right.shape and np.allclose(self.own_K_right, self.K)


def working_size(image: np.ndarray) -> tuple[int, int]:
    """(width, height): the long side WORK_LONG_SIDE, both sides multiples of 8."""
    scale = WORK_LONG_SIDE / max(image.shape[:2])
    return (
        max(MIN_SIDE, round(image.shape[1] * scale)) // 8 * 8,
        max(MIN_SIDE, round(image.shape[0] * scale)) // 8 * 8,
    )


def pinhole(fov_deg: float, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    focal = fov_to_focal_px(fov_deg, width)
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])


def working_pair(images: list[np.ndarray], fovs_deg: tuple[float, float]) -> WorkingPair:
    """Both photos at their working sizes, photo B also in photo A's camera (module docstring);
    fovs_deg are the photos' own horizontal fields of view."""
    if len(images) != 2:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"The stereo prior takes 2 photos, got {len(images)}.",
            "Pick two reference photos.",
        )
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < MIN_SIDE:
            raise VideoSceneError(
                ErrorCode.BAD_IMAGE,
                f"Photo {index} is {image.shape}, too small or not RGB.",
                f"Use photos of at least {MIN_SIDE} px per side.",
            )
    sizes = [working_size(image) for image in images]
    left, own_right = (
        cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        for image, size in zip(images, sizes, strict=True)
    )
    K, own_K = (pinhole(fov, size) for fov, size in zip(fovs_deg, sizes, strict=True))
    right, valid = reimage(own_right, own_K, K, sizes[0])
    if np.array_equal(left, right):
        raise prior_failed(
            "The two photos are identical, so there is no parallax to reconstruct depth from.",
            "Take the second photo from a different position.",
        )
    return WorkingPair(left, right, valid, K, own_right, own_K)


def reimage(
    image: np.ndarray, K_from: np.ndarray, K_to: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A photo taken with K_from as a camera at the same place with K_to and `size` would see
    it (both zero-skew pinholes), and the mask of the pixels it covers."""
    scale = K_from[0, 0] / K_to[0, 0]  # source pixels per target pixel
    # Target pixel centre u (OpenCV: u + 0.5 in the renderers' convention) -> source x + 0.5.
    offset = [K_from[i, 2] - 0.5 - scale * (K_to[i, 2] - 0.5) for i in (0, 1)]
    if image.shape[1::-1] == size and abs(scale - 1) < 1e-9 and max(map(abs, offset)) < 1e-9:
        return image, np.ones(image.shape[:2], bool)
    to_source = np.array([[scale, 0, offset[0]], [0, scale, offset[1]]])
    flags = cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR
    warped = cv2.warpAffine(image, to_source, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    inside = np.full(image.shape[:2], 255, np.uint8)
    covered = cv2.warpAffine(inside, to_source, size, flags=flags, borderValue=0) == 255
    return warped, covered

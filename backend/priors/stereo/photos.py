"""Both photos at one working size, and the refusals that need no matching."""

from __future__ import annotations

import cv2
import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .errors import prior_failed

WORK_LONG_SIDE = 640
MIN_SIDE = 64


def working_pair(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Both photos at view 0's working size. A different aspect ratio is centre-cropped to
    view 0's first (the same lens is assumed for both photos)."""
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
    first, second = images
    scale = WORK_LONG_SIDE / max(first.shape[:2])
    size = (
        max(MIN_SIDE, round(first.shape[1] * scale)) // 8 * 8,
        max(MIN_SIDE, round(first.shape[0] * scale)) // 8 * 8,
    )
    aspect = size[0] / size[1]
    h, w = second.shape[:2]
    if abs(w / h - aspect) > 0.01:
        if w / h > aspect:
            new_w = round(h * aspect)
            second = second[:, (w - new_w) // 2 : (w - new_w) // 2 + new_w]
        else:
            new_h = round(w / aspect)
            second = second[(h - new_h) // 2 : (h - new_h) // 2 + new_h]
    left, right = (
        cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in (first, second)
    )
    if np.array_equal(left, right):
        raise prior_failed(
            "The two photos are identical, so there is no parallax to reconstruct depth from.",
            "Take the second photo from a different position.",
        )
    return left, right

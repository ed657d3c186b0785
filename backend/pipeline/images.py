"""Decoding the photos a client sends (encoded PNG/JPEG/... bytes) into RGB uint8 arrays."""

from __future__ import annotations

import cv2
import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError

MIN_SIDE = 64
MAX_SIDE = 8192


def decode_image(blob: bytes | memoryview, name: str) -> np.ndarray:
    data = np.frombuffer(blob, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise VideoSceneError(
            ErrorCode.BAD_IMAGE,
            f"{name} is not a readable image ({data.size} bytes).",
            "Send PNG or JPEG files (the photo file's bytes, unchanged).",
        )
    if image.dtype == np.uint16:
        image = (image / 257).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise VideoSceneError(
            ErrorCode.BAD_IMAGE,
            f"{name} has {image.dtype} pixels.",
            "Use 8- or 16-bit PNG or JPEG.",
        )
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)  # alpha dropped, as the seed does
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        raise VideoSceneError(
            ErrorCode.BAD_IMAGE,
            f"{name} has {image.shape[2]} channels.",
            "Use RGB, RGBA or grayscale images.",
        )
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise VideoSceneError(
            ErrorCode.BAD_IMAGE,
            f"{name} is only {width}x{height} pixels.",
            f"Use photos of at least {MIN_SIDE} px per side.",
        )
    if max(height, width) > MAX_SIDE:
        raise VideoSceneError(
            ErrorCode.BAD_IMAGE,
            f"{name} is {width}x{height} pixels, over the {MAX_SIDE} px limit.",
            "Downscale the photo first.",
        )
    return np.ascontiguousarray(image)

"""The size limits of the photos a client sends, and OpenCV's and Pillow's copies of them.

No cv2 import here: OpenCV reads OPENCV_IO_MAX_IMAGE_* once, when it is first loaded, so
configure_opencv_limits() runs from the package's __init__ before any module imports cv2.
"""

from __future__ import annotations

import os

MIN_SIDE = 64
MAX_SIDE = 8192
MAX_PIXELS = 40_000_000  # 40 megapixels: a 16-bit RGBA decode then needs 320 MB at most

_OPENCV_LIMITS = {
    "OPENCV_IO_MAX_IMAGE_PIXELS": MAX_PIXELS,
    "OPENCV_IO_MAX_IMAGE_WIDTH": MAX_SIDE,
    "OPENCV_IO_MAX_IMAGE_HEIGHT": MAX_SIDE,
}


def configure_opencv_limits() -> None:
    """Make OpenCV refuse, before allocating, any image over our limits (a defence behind the
    header check in images.py). A stricter value already in the environment is kept."""
    for name, limit in _OPENCV_LIMITS.items():
        current = os.environ.get(name, "")
        if not (current.isdigit() and 0 < int(current) <= limit):
            os.environ[name] = str(limit)


def configure_pillow_limits() -> None:
    """Make Pillow refuse, in Image.open, any image over MAX_PIXELS: it raises
    DecompressionBombError above twice MAX_IMAGE_PIXELS (and only warns above it). Its WebP
    reader runs this check before libwebp allocates the canvas, which is why it matters here.
    No Pillow import at module level (this module stays light); a stricter value is kept."""
    from PIL import Image

    limit = MAX_PIXELS // 2
    if Image.MAX_IMAGE_PIXELS is None or limit < Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit

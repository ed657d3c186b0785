"""The size limits of the photos a client sends, and OpenCV's own copy of them.

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

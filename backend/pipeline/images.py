"""Decoding the photos a client sends (encoded PNG or JPEG bytes) into RGB uint8 arrays.

The declared size is read from the file's header first (Pillow reads only the header) and
refused above the limits in image_limits.py before OpenCV allocates anything; OpenCV's own
limits (set at import) are the second line. Only PNG and JPEG are accepted: the formats whose
size is checked here. PNG chunk lengths are checked too: OpenCV's PNG reader allocates what a
chunk declares (a 200-byte file can ask for 2 GB), and Pillow's header read stops before IDAT.
"""

from __future__ import annotations

import io
import struct
import warnings

import cv2
import numpy as np
from PIL import Image
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .image_limits import MAX_PIXELS, MAX_SIDE, MIN_SIDE

FORMATS = ("PNG", "JPEG")  # Pillow names; a JPEG with several pictures reads as "MPO"
SEND_HINT = "Send PNG or JPEG files (the photo file's bytes, unchanged)."
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _bad_image(message: str, hint: str = SEND_HINT) -> VideoSceneError:
    return VideoSceneError(ErrorCode.BAD_IMAGE, message, hint)


def declared_size(data: bytes | memoryview, name: str) -> tuple[int, int]:
    """(width, height) as the PNG or JPEG header declares it, without decoding pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we refuse below
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                return image.size
    except Image.DecompressionBombError as exc:
        raise _bad_image(f"{name} declares an enormous size ({exc}).", "Downscale it.") from exc
    except Image.UnidentifiedImageError as exc:
        raise _bad_image(
            f"{name} is not a PNG or JPEG file, or its header is damaged ({len(data)} bytes)."
        ) from exc
    except Exception as exc:  # a header Pillow cannot parse, whatever the exception
        raise _bad_image(f"{name} has a damaged header ({len(data)} bytes): {exc}") from exc


def check_png_chunks(data: bytes | memoryview, name: str) -> None:
    """Every chunk of a PNG must fit in the bytes that follow it, up to IEND.

    Hand-written: neither Pillow's header read nor OpenCV checks this before allocating.
    """
    view = memoryview(data)
    position = len(PNG_SIGNATURE)
    while position + 12 <= len(view):
        length, kind = struct.unpack_from(">I4s", view, position)
        end = position + 12 + length  # length, type, data, CRC
        if end > len(view):
            raise _bad_image(
                f"{name} is a damaged PNG: a {kind!r} chunk declares {length} bytes, "
                f"{len(view) - position - 12} follow."
            )
        if kind == b"IEND":
            return
        position = end
    raise _bad_image(f"{name} is a truncated PNG (no IEND chunk).")


def check_size(width: int, height: int, name: str) -> None:
    if min(width, height) < MIN_SIDE:
        raise _bad_image(
            f"{name} is only {width}x{height} pixels.",
            f"Use photos of at least {MIN_SIDE} px per side.",
        )
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise _bad_image(
            f"{name} is {width}x{height} pixels, over the limit of {MAX_SIDE} px per side and "
            f"{MAX_PIXELS / 1e6:.0f} megapixels.",
            "Downscale the photo first.",
        )


def decode_image(blob: bytes | memoryview, name: str) -> np.ndarray:
    width, height = declared_size(blob, name)
    check_size(width, height, name)
    if bytes(blob[: len(PNG_SIGNATURE)]) == PNG_SIGNATURE:
        check_png_chunks(blob, name)
    data = np.frombuffer(blob, dtype=np.uint8)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # OpenCV's own size limit, or a decoder error
        raise _bad_image(f"{name} could not be decoded: {str(exc).strip()[-200:]}") from exc
    if image is None:
        raise _bad_image(f"{name} is not a readable image ({data.size} bytes).")
    if image.shape[:2] != (height, width):
        raise _bad_image(
            f"{name} decodes to {image.shape[1]}x{image.shape[0]} pixels but declares {width}x{height}."
        )
    return _to_rgb8(image, name)


def _to_rgb8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == np.uint16:
        image = cv2.convertScaleAbs(image, alpha=1 / 257)  # rounds; no float copy of the image
    elif image.dtype != np.uint8:
        raise _bad_image(f"{name} has {image.dtype} pixels.", "Use 8- or 16-bit PNG or JPEG.")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)  # alpha dropped, as the seed does
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        raise _bad_image(
            f"{name} has {image.shape[2]} channels.", "Use RGB, RGBA or grayscale images."
        )
    return np.ascontiguousarray(image)

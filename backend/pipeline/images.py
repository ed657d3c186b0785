"""Decoding the photos a client sends (encoded PNG, JPEG, WebP or HEIC/HEIF bytes) into upright
sRGB uint8 arrays, with what their metadata says about the camera (photo_meta.py).

The declared size is read from the file's header first (Pillow reads only the header) and
refused above the limits in image_limits.py before any decoder allocates pixels; OpenCV's own
limits and Pillow's decompression-bomb limit (both set at import, image_limits.py) are the
second line: Pillow's WebP reader checks it before libwebp allocates its canvas. Only these
formats are accepted: the ones whose size is checked here. PNG chunk lengths are checked too:
OpenCV's PNG reader allocates what a chunk declares (a 200-byte file can ask for 2 GB), and
Pillow's header read stops before IDAT.

Order: size checks on the declared size, decode (PNG and JPEG with OpenCV, which also reads
16-bit PNGs right; WebP with Pillow's libwebp; HEIC with pillow-heif's libheif, which applies
HEIF's own rotation and mirror boxes itself and resets the EXIF tag), then the EXIF orientation,
then the colour profile to sRGB.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import pillow_heif
from PIL import Image
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .image_limits import MAX_PIXELS, MAX_SIDE, MIN_SIDE, configure_pillow_limits
from .photo_meta import PhotoMeta, exif_fov_deg, read_meta, to_srgb, upright

# Pillow names; a JPEG with several pictures reads as "MPO" (not tried: JPEG opens it)
FORMATS = ("PNG", "JPEG", "WEBP", "HEIF")
OPENCV_FORMATS = ("PNG", "JPEG")
SEND_HINT = "Send PNG, JPEG, WebP or HEIC files (the photo file's bytes, unchanged)."
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Only the primary picture of a HEIF file: its thumbnails, depth and auxiliary images are not
# read (each would be more to decode and to check).
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
configure_pillow_limits()


@dataclass(frozen=True)
class Photo:
    pixels: np.ndarray  # (H, W, 3) uint8, upright, sRGB
    exif_fov_deg: float | None  # horizontal field of view the metadata gives, if any
    orientation: int  # the EXIF orientation that was applied (1: none)
    colour: str  # the colour profile and what was done with it
    format: str


def _bad_image(message: str, hint: str = SEND_HINT) -> VideoSceneError:
    return VideoSceneError(ErrorCode.BAD_IMAGE, message, hint)


def declared_size(data: bytes | memoryview, name: str) -> tuple[int, int]:
    """(width, height) as the file's header declares it, without decoding pixels."""
    width, height, _, _ = read_header(data, name)
    return width, height


def read_header(data: bytes | memoryview, name: str) -> tuple[int, int, str, PhotoMeta]:
    """(width, height) as stored, the format and the metadata, without decoding pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we refuse below
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                return image.size[0], image.size[1], image.format, read_meta(image)
    except Image.DecompressionBombError as exc:
        raise _bad_image(f"{name} declares an enormous size ({exc}).", "Downscale it.") from exc
    except Image.UnidentifiedImageError as exc:
        raise _bad_image(
            f"{name} is not a PNG, JPEG, WebP or HEIC file, or its header is damaged ({len(data)} bytes)."
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
    return decode_photo(blob, name).pixels


def decode_photo(blob: bytes | memoryview, name: str) -> Photo:
    width, height, kind, meta = read_header(blob, name)
    check_size(width, height, name)
    if bytes(blob[: len(PNG_SIGNATURE)]) == PNG_SIGNATURE:
        check_png_chunks(blob, name)
    if kind in OPENCV_FORMATS:
        pixels = _decode_opencv(blob, width, height, name)
    else:
        pixels = _decode_pillow(blob, width, height, name)
    pixels = upright(pixels, meta.orientation)
    pixels, colour = to_srgb(pixels, meta.icc_profile)
    shown_height, shown_width = pixels.shape[:2]
    return Photo(
        pixels=np.ascontiguousarray(pixels),
        exif_fov_deg=exif_fov_deg(meta, shown_width, shown_height),
        orientation=meta.orientation,
        colour=colour,
        format=kind,
    )


def _decode_pillow(blob: bytes | memoryview, width: int, height: int, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(blob), formats=FORMATS) as image:
            if image.size != (width, height):
                raise _bad_image(f"{name} changed its declared size while opening.")
            pixels = np.asarray(image.convert("RGB"))  # alpha dropped, as for PNG
    except VideoSceneError:
        raise
    except Exception as exc:  # a decoder error, whatever the exception
        raise _bad_image(f"{name} could not be decoded: {str(exc).strip()[-200:]}") from exc
    if pixels.shape[:2] != (height, width):
        raise _bad_image(
            f"{name} decodes to {pixels.shape[1]}x{pixels.shape[0]} pixels but declares {width}x{height}."
        )
    return pixels


def _decode_opencv(blob: bytes | memoryview, width: int, height: int, name: str) -> np.ndarray:
    data = np.frombuffer(blob, dtype=np.uint8)
    try:  # IMREAD_UNCHANGED: no orientation applied here (upright() does, for every format)
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

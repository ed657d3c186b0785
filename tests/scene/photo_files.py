"""Photos as a phone or camera writes them, made from the sample pair: pixels stored rotated
with an EXIF orientation tag, focal lengths in EXIF, HEIC and WebP files, and bombs."""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image
from videoscene_protocol.cameras import focal_px_to_fov

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

# What a camera stores for an upright photo with orientation N, from the standard's table of
# where the stored row 0 and column 0 lie in the shown picture (EXIF 2.32, Orientation), not
# from the code under test: stored[r][c] = shown[...] as in each comment (H, W of the shown).
STORED_FOR_ORIENTATION = {
    1: lambda a: a,  # row 0 top, column 0 left
    2: lambda a: a[:, ::-1],  # top, right: shown[r][W-1-c]
    3: lambda a: a[::-1, ::-1],  # bottom, right
    4: lambda a: a[::-1],  # bottom, left
    5: lambda a: a.transpose(1, 0, 2),  # left, top: shown[c][r]
    6: lambda a: np.rot90(a, 1),  # right, top: shown[c][W-1-r]
    7: lambda a: np.rot90(a, 1)[:, ::-1],  # right, bottom: shown[H-1-c][W-1-r]
    8: lambda a: np.rot90(a, -1),  # left, bottom: shown[H-1-c][r]
}


def sample_rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)


def sample_fov_deg() -> float:
    cams = json.loads((SAMPLES / "cameras.json").read_text())
    return focal_px_to_fov(cams["view_a"]["lens_mm"], cams["view_a"]["sensor_width_mm"])


def exif_bytes(
    orientation: int = 1,
    focal_35mm: int | None = None,
    focal_mm: float | None = None,
    focal_plane_px_per_cm: float | None = None,
) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    details = exif.get_ifd(ExifTags.IFD.Exif)
    if focal_35mm is not None:
        details[ExifTags.Base.FocalLengthIn35mmFilm] = focal_35mm
    if focal_mm is not None:
        details[ExifTags.Base.FocalLength] = focal_mm
    if focal_plane_px_per_cm is not None:
        details[ExifTags.Base.FocalPlaneXResolution] = focal_plane_px_per_cm
        details[ExifTags.Base.FocalPlaneYResolution] = focal_plane_px_per_cm
        details[ExifTags.Base.FocalPlaneResolutionUnit] = 3  # centimetre
    return exif.tobytes()


def encode(pixels: np.ndarray, kind: str, exif: bytes | None = None, **options) -> bytes:
    """RGB pixels -> file bytes in Pillow's format `kind`, with an EXIF block if given."""
    out = io.BytesIO()
    extra = {"exif": exif} if exif else {}
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, format=kind, **extra, **options)
    return out.getvalue()


def focal_35mm_for(fov_deg: float, width: int, height: int) -> float:
    """The 35 mm equivalent focal length (diagonal convention) of a horizontal FOV."""
    half_width_mm = math.hypot(36, 24) * width / math.hypot(width, height) / 2
    return half_width_mm / math.tan(math.radians(fov_deg) / 2)


def webp_bomb(side: int) -> bytes:
    """A few hundred bytes that declare a side x side canvas: an animated WebP of two 64 px
    frames whose VP8X chunk is patched (frames smaller than the canvas are valid there)."""
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    data = bytearray(out.getvalue())
    at = data.index(b"VP8X") + 8 + 4  # chunk header, then 4 bytes of flags
    data[at : at + 3] = (side - 1).to_bytes(3, "little")
    data[at + 3 : at + 6] = (side - 1).to_bytes(3, "little")
    return bytes(data)


def heic_bomb(width: int, height: int) -> bytes:
    """A 64 px HEIC whose image spatial extent box ('ispe') declares width x height."""
    data = bytearray(encode(np.full((64, 64, 3), 90, np.uint8), "HEIF"))
    at = data.index(b"ispe") + 4 + 4  # box type, then version and flags
    data[at : at + 8] = struct.pack(">II", width, height)
    return bytes(data)

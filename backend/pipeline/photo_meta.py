"""What a photo's metadata says about its pixels and its camera: the EXIF orientation, the
horizontal field of view, and the colour profile.

Field of view. EXIF's FocalLengthIn35mmFilm is the focal length that gives the same angle of
view on a 36 x 24 mm frame, matched along the DIAGONAL (43.27 mm): CIPA DC-008 leaves the
convention open, but cameras and phones (an iPhone's "26 mm" main camera shoots 4:3) match the
diagonal, so a 4:3 or 16:9 photo is not treated as if it were 3:2. The horizontal field of view
of a photo of w x h stored pixels (after its orientation is applied) is then

    hfov = 2 atan( (43.27 mm * w / sqrt(w^2 + h^2)) / (2 * f35) ).

Without it, FocalLength (mm) with FocalPlaneXResolution (pixels per unit on the sensor) gives
the focal length in pixels, if the photo has not been resized since it was taken; a result
outside the build_scene range is ignored (a resized photo, a wrong tag) rather than trusted.

Colour: an embedded ICC profile other than sRGB (Display P3 from phones, Adobe RGB from
cameras) is converted to sRGB with Pillow's ImageCms (LittleCMS), perceptual intent.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageCms
from videoscene_protocol.params import BUILD_SCENE

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm
FOV_RANGE_DEG = (BUILD_SCENE["fov_deg"].minimum, BUILD_SCENE["fov_deg"].maximum)
# FocalPlaneResolutionUnit: 2 = inch, 3 = centimetre (the EXIF default is inch)
_RESOLUTION_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
# EXIF orientation -> the transpose that shows the stored pixels upright (the table Pillow's
# ImageOps.exif_transpose applies; it is applied here to pixels OpenCV decoded).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class PhotoMeta:
    """Read from the header, before any pixel is decoded."""

    orientation: int  # EXIF 1..8 (1: stored upright)
    focal_35mm: float | None  # FocalLengthIn35mmFilm, mm
    focal_px_stored: float | None  # FocalLength x FocalPlaneXResolution, in stored pixels
    icc_profile: bytes | None

    @property
    def swaps_sides(self) -> bool:
        return self.orientation in (5, 6, 7, 8)


def read_meta(image: Image.Image) -> PhotoMeta:
    """The metadata of a Pillow image opened for its header (nothing decoded)."""
    exif = image.getexif()
    orientation = exif.get(ExifTags.Base.Orientation, 1)
    if orientation not in range(1, 9):
        orientation = 1  # a damaged tag: the pixels as stored
    details = exif.get_ifd(ExifTags.IFD.Exif)
    return PhotoMeta(
        orientation=int(orientation),
        focal_35mm=_positive(details.get(ExifTags.Base.FocalLengthIn35mmFilm)),
        focal_px_stored=_focal_px(details),
        icc_profile=image.info.get("icc_profile") or None,
    )


def _positive(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _focal_px(details) -> float | None:
    focal_mm = _positive(details.get(ExifTags.Base.FocalLength))
    per_unit = _positive(details.get(ExifTags.Base.FocalPlaneXResolution))
    unit_mm = _RESOLUTION_UNIT_MM.get(details.get(ExifTags.Base.FocalPlaneResolutionUnit, 2))
    if focal_mm is None or per_unit is None or unit_mm is None:
        return None
    return focal_mm * per_unit / unit_mm


def exif_fov_deg(meta: PhotoMeta, width: int, height: int) -> float | None:
    """Horizontal field of view of the upright photo (width x height after orientation), or
    None when the metadata does not say (or says something outside the accepted range)."""
    if meta.focal_35mm is not None:
        half_width_mm = FULL_FRAME_DIAGONAL_MM * width / math.hypot(width, height) / 2
        fov = math.degrees(2 * math.atan(half_width_mm / meta.focal_35mm))
    elif meta.focal_px_stored is not None:  # square pixels: the same focal along both axes
        fov = math.degrees(2 * math.atan(width / 2 / meta.focal_px_stored))
    else:
        return None
    return fov if FOV_RANGE_DEG[0] <= fov <= FOV_RANGE_DEG[1] else None


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """RGB pixels as stored -> as shown (EXIF orientation applied)."""
    method = _UPRIGHT.get(orientation)
    if method is None:
        return pixels
    return np.asarray(Image.fromarray(pixels).transpose(method))


def to_srgb(pixels: np.ndarray, icc_profile: bytes | None) -> tuple[np.ndarray, str]:
    """RGB pixels in the photo's profile -> sRGB, and the profile's name ("sRGB" when none is
    embedded: untagged photos are taken as sRGB)."""
    if not icc_profile:
        return pixels, "sRGB"
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        name = ImageCms.getProfileDescription(source).strip() or "unnamed ICC profile"
    except (OSError, ImageCms.PyCMSError):
        return pixels, "sRGB (damaged ICC profile ignored)"
    if "srgb" in name.lower():
        return pixels, name
    try:
        converted = ImageCms.profileToProfile(
            Image.fromarray(pixels), source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except ImageCms.PyCMSError:  # e.g. a CMYK or grey profile on RGB pixels
        return pixels, f"{name} (not converted: the profile does not fit RGB pixels)"
    return np.asarray(converted), f"{name} -> sRGB"


def resolve_fovs(
    user_fov_deg: float | None, exif_fovs: list[float | None], sizes: list[tuple[int, int]]
) -> tuple[list[float | None], list[str]]:
    """Each photo's field of view for the prior and where it came from ("user", "exif",
    "assumed"; None = assumed by the prior). A user-given FOV wins for both photos. A photo
    without one in its EXIF takes the other photo's when both have the same upright size
    (the same camera, most likely), else the prior assumes one."""
    if user_fov_deg is not None:
        return [user_fov_deg] * len(exif_fovs), ["user"] * len(exif_fovs)
    fovs: list[float | None] = list(exif_fovs)
    for index, fov in enumerate(exif_fovs):
        if fov is None:
            others = [
                other
                for j, other in enumerate(exif_fovs)
                if j != index and other is not None and sizes[j] == sizes[index]
            ]
            fovs[index] = others[0] if others else None
    return fovs, ["assumed" if fov is None else "exif" for fov in fovs]

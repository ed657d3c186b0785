"""Photos as they come off a phone or camera, decoded: EXIF orientation, the field of view
from EXIF, HEIC and WebP, colour profiles, and bombs in the new formats (no prior runs here)."""

from __future__ import annotations

import importlib.util
import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps
from videoscene_backend.pipeline.images import decode_photo
from videoscene_backend.pipeline.photo_meta import resolve_fovs
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .photo_files import (
    STORED_FOR_ORIENTATION,
    encode,
    exif_bytes,
    focal_35mm_for,
    heic_bomb,
    sample_rgb,
    webp_bomb,
)

LOSSLESS = {"PNG": {}, "WEBP": {"lossless": True}}


@pytest.fixture(scope="module")
def upright() -> np.ndarray:
    return sample_rgb("view_a.jpg")[::2, ::2]  # 320 x 240: enough for pixel equality


@pytest.mark.parametrize("kind", sorted(LOSSLESS))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_orientation_decodes_to_the_upright_pixels(upright, kind, orientation) -> None:
    stored = STORED_FOR_ORIENTATION[orientation](upright)
    blob = encode(stored, kind, exif_bytes(orientation), **LOSSLESS[kind])
    photo = decode_photo(blob, "photo")
    assert photo.orientation == orientation
    np.testing.assert_array_equal(photo.pixels, upright)
    # and as Pillow's own exif_transpose shows the file
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(blob))).convert("RGB")
    np.testing.assert_array_equal(photo.pixels, np.asarray(shown))


def test_a_heic_keeps_its_own_rotation_once(upright) -> None:
    """HEIF rotates with its own 'irot' box (libheif applies it and resets the EXIF tag):
    pillow-heif writes a 6-tagged picture that way, and it must not be turned twice."""
    blob = encode(upright, "HEIF", exif_bytes(6), quality=95)
    photo = decode_photo(blob, "photo")
    assert photo.format == "HEIF" and photo.pixels.shape == (320, 240, 3)
    expected = np.rot90(upright, -1)  # stored as given, shown turned clockwise
    assert np.abs(photo.pixels.astype(int) - expected).mean() < 3


@pytest.mark.parametrize("orientation", [1, 6])
def test_35mm_equivalent_focal_length_gives_the_horizontal_fov(upright, orientation) -> None:
    blob = encode(STORED_FOR_ORIENTATION[orientation](upright), "JPEG", exif_bytes(orientation, 26))
    photo = decode_photo(blob, "photo")
    height, width = photo.pixels.shape[:2]  # upright: 320 x 240, or 240 x 320 when turned
    half_width = math.hypot(36, 24) * width / math.hypot(width, height) / 2  # diagonal rule
    assert photo.exif_fov_deg == pytest.approx(math.degrees(2 * math.atan(half_width / 26)))
    # an iPhone's 26 mm main camera at 4:3: about 67 degrees across the long side
    assert photo.exif_fov_deg == pytest.approx(67.3 if width > height else 53.9, abs=0.1)


def test_focal_length_with_the_sensor_resolution_gives_the_fov(upright) -> None:
    focal_px = 300.0  # a 50 mm lens, 60 px per mm of sensor at this size
    blob = encode(upright, "PNG", exif_bytes(focal_mm=50.0, focal_plane_px_per_cm=60.0))
    fov = decode_photo(blob, "photo").exif_fov_deg
    assert fov == pytest.approx(math.degrees(2 * math.atan(upright.shape[1] / 2 / focal_px)))


def test_no_or_absurd_focal_metadata_gives_no_fov(upright) -> None:
    assert decode_photo(encode(upright, "PNG"), "photo").exif_fov_deg is None
    fisheye = encode(upright, "PNG", exif_bytes(focal_35mm=2))  # 170+ degrees: out of range
    assert decode_photo(fisheye, "photo").exif_fov_deg is None
    assert focal_35mm_for(67.3, 4, 3) == pytest.approx(26, abs=0.05)


def test_fov_sources_user_wins_then_exif_then_the_other_photo_then_assumed() -> None:
    same, other = (480, 640), (640, 480)
    assert resolve_fovs(50.0, [60.0, None], [same, same]) == ([50.0, 50.0], ["user", "user"])
    assert resolve_fovs(None, [63.0, 45.0], [same, other]) == ([63.0, 45.0], ["exif", "exif"])
    assert resolve_fovs(None, [None, 63.0], [same, same]) == ([63.0, 63.0], ["exif", "exif"])
    assert resolve_fovs(None, [None, 63.0], [same, other]) == ([None, 63.0], ["assumed", "exif"])
    assert resolve_fovs(None, [None, None], [same, same]) == ([None, None], ["assumed"] * 2)


def _display_p3_profile() -> Path | None:
    """Blender ships a Display P3 profile; its bpy wheel is in the test environment."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    return next(iter(root.glob("*/datafiles/colormanagement/icc/srgb_p3d65_display.icc")), None)


def test_display_p3_is_converted_to_srgb() -> None:
    profile = _display_p3_profile()
    if profile is None:
        pytest.skip("no Display P3 profile at hand (bpy's datafiles)")
    pixels = np.zeros((64, 128, 3), np.uint8)
    pixels[:, :64] = (128, 128, 128)
    pixels[:, 64:] = (200, 60, 40)  # a saturated P3 red: more saturated still in sRGB
    blob = encode(pixels, "PNG", icc_profile=profile.read_bytes())
    photo = decode_photo(blob, "photo")
    assert "-> sRGB" in photo.colour
    grey, red = photo.pixels[0, 0].astype(int), photo.pixels[0, 100].astype(int)
    assert np.abs(grey - 128).max() <= 2
    assert red[0] - red[1] > 200 - 60 + 10
    srgb = encode(
        pixels,
        "PNG",
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
    )
    assert decode_photo(srgb, "photo").pixels.tobytes() == pixels.tobytes()


BOMBS = {
    "webp_256_megapixels": lambda: webp_bomb(16000),
    "webp_over_the_side_limit": lambda: webp_bomb(9000),
    "heic_900_megapixels": lambda: heic_bomb(30000, 30000),
    "heic_over_the_side_limit": lambda: heic_bomb(9000, 100),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bombs_in_the_new_formats_are_refused(name) -> None:
    blob = BOMBS[name]()
    assert len(blob) < 4000
    with pytest.raises(VideoSceneError) as info:
        decode_photo(blob, name)
    assert info.value.code == ErrorCode.BAD_IMAGE and info.value.hint


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc")
def test_bombs_are_refused_before_allocation() -> None:
    """Decoded in a fresh process, the bombs raise its peak resident memory (VmHWM) by little:
    one decoded 16000^2 canvas would take 1 GB (two, in libwebp's animation decoder)."""
    script = (
        "import re, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from videoscene_backend.pipeline.images import decode_photo\n"
        "from videoscene_protocol.errors import VideoSceneError\n"
        "from photo_files import heic_bomb, webp_bomb\n"
        "blobs = [webp_bomb(16000), webp_bomb(9000), heic_bomb(30000, 30000), heic_bomb(9000, 100)]\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
        "before = peak()\n"
        "for blob in blobs:\n"
        "    try:\n"
        "        decode_photo(blob, 'bomb')\n"
        "        raise SystemExit('a bomb was decoded')\n"
        "    except VideoSceneError:\n"
        "        pass\n"
        "print(peak() - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) < 50 * 1024, f"peak grew by {done.stdout.strip()} kB"

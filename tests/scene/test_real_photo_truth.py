"""The real-photo bench's truth and scoring (bench/real_photos/, issue #35): the SfM camera
models the lens's distortion, its field of view agrees with the photos' EXIF, shrinking a photo
keeps what its EXIF says about the field of view, and the held-out photo is undistorted onto
the pinhole camera it is scored at."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from videoscene_backend.pipeline.images import decode_photo

BENCH = Path(__file__).resolve().parents[2] / "bench"
PHOTOS = BENCH / "real_photos"


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _edge_half_angle_deg(f: float, k1: float, half_width_px: float) -> float:
    """The angle that the middle of the photo's side sees through COLMAP's SIMPLE_RADIAL lens
    (x_d = x_u (1 + k1 x_u^2)), by Newton's method on x_u."""
    x_d = half_width_px / f
    x_u = x_d
    for _ in range(20):
        x_u -= (x_u * (1 + k1 * x_u * x_u) - x_d) / (1 + 3 * k1 * x_u * x_u)
    return math.degrees(math.atan(x_u))


def test_sceaux_truth_models_its_barrel_distortion_and_agrees_with_exif() -> None:
    truth = json.loads((PHOTOS / "sceaux" / "poses.json").read_text())
    assert "SIMPLE_RADIAL" in truth["sfm"]
    camera = next(iter(truth["images"].values()))
    f, k1, width = camera["K"][0][0], camera["k1"], camera["width"]
    assert k1 < -0.1  # a compact zoom at its wide end: strong barrel distortion
    edge_to_edge = 2 * _edge_half_angle_deg(f, k1, width / 2)
    name = sorted(truth["images"])[0]
    exif = decode_photo((PHOTOS / "sceaux" / "images" / name).read_bytes(), name).exif_fov_deg
    assert exif == pytest.approx(52.6, abs=0.05)
    # The lens sees what its EXIF says; a pinhole fit had said 49.5 degrees.
    assert edge_to_edge == pytest.approx(exif, abs=0.6)
    paraxial = math.degrees(2 * math.atan(width / 2 / f))
    assert 50.0 < paraxial < exif


def test_shrinking_a_photo_keeps_its_exif_field_of_view(tmp_path: Path) -> None:
    """shrink_photos.py scales FocalPlaneXResolution with the pixels; photo_meta then reads the
    same field of view from the full-size and the shrunk photo (skull: FocalLength and focal
    plane resolution, no 35 mm equivalent)."""
    shrink = _module(PHOTOS / "shrink_photos.py", "shrink_photos_under_test")
    source = PHOTOS / "skull" / "images" / "31.jpg"
    small = tmp_path / "31.jpg"
    shrink.shrink(source, small, 400)
    fovs = [decode_photo(p.read_bytes(), p.name) for p in (source, small)]
    assert fovs[1].pixels.shape[1] == 400
    assert fovs[0].exif_fov_deg is not None
    assert fovs[1].exif_fov_deg == pytest.approx(fovs[0].exif_fov_deg, abs=0.1)


def test_the_held_out_photo_is_undistorted_onto_its_pinhole_camera() -> None:
    """A small real crop through a barrel-distorting lens, undistorted by the bench, is the
    pinhole picture again, and a point lands where the pinhole projects it."""
    bench = _module(BENCH / "real_photos.py", "real_photos_bench_under_test")
    photo = cv2.imread(str(PHOTOS / "sceaux" / "images" / "100_7100.jpg"))[100:292, 200:456]
    height, width = photo.shape[:2]
    f, k1 = 270.0, -0.155
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    # The pinhole photo as the distorting lens records it (inverse of the bench's mapping).
    xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x_d, y_d = (xs - K[0, 2]) / f, (ys - K[1, 2]) / f
    r_d = np.hypot(x_d, y_d)
    r_u = r_d.copy()
    for _ in range(20):
        r_u -= (r_u * (1 + k1 * r_u * r_u) - r_d) / (1 + 3 * k1 * r_u * r_u)
    scale = np.where(r_d > 0, r_u / np.maximum(r_d, 1e-12), 1.0)
    map_x = (f * x_d * scale + K[0, 2] - 0.5).astype(np.float32)
    map_y = (f * y_d * scale + K[1, 2] - 0.5).astype(np.float32)
    distorted = cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    restored, valid = bench.undistort(distorted, K, k1)
    assert valid.all()  # barrel distortion: every pinhole pixel has a source in the photo
    inner = (slice(8, -8), slice(8, -8))
    error = np.abs(restored[inner].astype(float) - photo[inner].astype(float))
    raw_error = np.abs(distorted[inner].astype(float) - photo[inner].astype(float))
    assert np.median(error) < 6 and np.median(error) < np.median(raw_error) / 2
    # A bright dot at pinhole pixel (250, 10), near a corner: recorded where the lens puts
    # it, restored there.
    dot = np.zeros((height, width, 3), np.uint8)
    x_u, y_u = (250.5 - K[0, 2]) / f, (10.5 - K[1, 2]) / f
    s = 1 + k1 * (x_u * x_u + y_u * y_u)
    recorded = int(f * y_u * s + K[1, 2]), int(f * x_u * s + K[0, 2])
    assert abs(recorded[1] - 250) >= 4  # the lens moves it visibly
    dot[recorded] = 255
    back, _ = bench.undistort(dot, K, k1)
    row, col = np.unravel_index(back[..., 0].argmax(), back.shape[:2])
    assert abs(int(col) - 250) <= 1 and abs(int(row) - 10) <= 1

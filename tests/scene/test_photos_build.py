"""build_scene on photos as a phone or camera writes them (photo_files.py makes them from the
sample pair): each EXIF orientation builds the upright scene, the EXIF focal length gives the
field of view in the meta, HEIC and WebP build, and photos of different sizes, aspects and
fields of view build with each photo's own intrinsics."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from videoscene_backend.pipeline.contract import JobRequest
from videoscene_backend.pipeline.scene_jobs import build_scene
from videoscene_backend.scene.gaussians import SH_C0
from videoscene_protocol.cameras import fov_to_focal_px

from .photo_files import (
    STORED_FOR_ORIENTATION,
    encode,
    exif_bytes,
    focal_35mm_for,
    sample_fov_deg,
    sample_rgb,
)

VIEWS = ("view_a.jpg", "view_b.jpg")
# The samples' true field of view as a phone would store it: a whole number of millimetres.
FOCAL_35MM = round(focal_35mm_for(sample_fov_deg(), 640, 480))
EXIF_FOV_DEG = math.degrees(2 * math.atan(math.hypot(36, 24) * 0.8 / 2 / FOCAL_35MM))


def _build(job_context, tmp_path, blobs: list[bytes], params: dict | None = None):
    ctx = job_context(tmp_path)
    params = {"prior": "stereo", **(params or {})}
    blob_names = {"image_0": blobs[0], "image_1": blobs[1]}
    meta = build_scene(ctx, JobRequest("b", "build_scene", params, blobs=blob_names)).meta
    return meta, ctx.scenes.get(meta["scene_id"])


def _photo_a_gaussians(scene) -> tuple[np.ndarray, np.ndarray]:
    """Depth and colour of the Gaussian at each pixel of photo A (the stereo prior puts one
    Gaussian per pixel of A first, row-major): what A's render is made of. Compared instead of
    renders, which take a minute each on the test machine's CPU."""
    count = scene.reference_cameras[0].width * scene.reference_cameras[0].height
    assert scene.meta["gaussians_a"] == count
    depth = scene.means[:count, 2].numpy()
    colour = (SH_C0 * scene.sh[:count, 0] + 0.5).clamp(0, 1).numpy()
    return depth, colour


def _same_scene(
    scene, reference, colour_tolerance: float = 6 / 255, shape_tolerance: float = 0.02
) -> None:
    """The same surfaces and colours at each pixel of photo A, within what re-encoding the
    photos (JPEG blocks, another codec) moves: the unit of length is the baseline in both, but
    a slightly other pose estimate scales all depths by a few percent, so the shape is compared
    after median scaling, and the scale apart. Another codec or camera moves the pose estimate
    by a few tenths of a degree, which tilts the depths by a few percent (shape_tolerance)."""
    depth, colour = _photo_a_gaussians(scene)
    expected_depth, expected_colour = _photo_a_gaussians(reference)
    ratio = depth / expected_depth
    scale = float(np.median(ratio))
    assert abs(scale - 1) < 0.1
    assert np.median(np.abs(ratio / scale - 1)) < shape_tolerance
    assert np.abs(colour - expected_colour).mean() < colour_tolerance


def _direction_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two cameras' positions seen from camera 0 (the baseline's direction)."""
    cos = a[:3, 3] @ b[:3, 3] / np.linalg.norm(a[:3, 3]) / np.linalg.norm(b[:3, 3])
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def _rotation_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def _phone_jpegs(orientation: int) -> list[bytes]:
    """The samples stored as a phone stores them: pixels turned, tag and focal length set."""
    return [
        encode(
            STORED_FOR_ORIENTATION[orientation](sample_rgb(view)),
            "JPEG",
            exif_bytes(orientation, FOCAL_35MM),
            quality=95,
        )
        for view in VIEWS
    ]


@pytest.fixture(scope="module")
def upright(job_context, tmp_path_factory):
    meta, scene = _build(job_context, tmp_path_factory.mktemp("upright"), _phone_jpegs(1))
    return meta, scene


def test_the_exif_focal_length_gives_the_fov_in_the_meta(upright) -> None:
    meta, scene = upright
    assert meta["fov_source"] == "exif" and meta["fov_sources"] == ["exif", "exif"]
    assert meta["fov_deg"] == pytest.approx(EXIF_FOV_DEG, abs=1e-3)
    assert abs(EXIF_FOV_DEG - sample_fov_deg()) < 1.0  # the rounding of the millimetres
    focal = fov_to_focal_px(EXIF_FOV_DEG, 640)
    for camera in meta["reference_cameras"]:
        assert camera["K"][0][0] == pytest.approx(focal) and camera["width"] == 640
    assert [p["orientation"] for p in meta["photos"]] == [1, 1]


def test_a_user_fov_wins_over_exif(job_context, tmp_path) -> None:
    blobs = [encode(sample_rgb(v), "PNG", exif_bytes(1, FOCAL_35MM)) for v in VIEWS]
    meta, _ = _build(job_context, tmp_path, blobs, {"fov_deg": 66.0})
    assert meta["fov_source"] == "user" and meta["fov_deg"] == 66.0


@pytest.mark.parametrize("orientation", range(2, 9))
def test_each_orientation_builds_the_upright_scene(
    upright, job_context, tmp_path, orientation
) -> None:
    meta, scene = _build(job_context, tmp_path, _phone_jpegs(orientation))
    reference_meta, reference = upright
    assert [p["orientation"] for p in meta["photos"]] == [orientation] * 2
    assert meta["reference_cameras"][0] == reference_meta["reference_cameras"][0]
    camera, expected = scene.reference_cameras[1], reference.reference_cameras[1]
    np.testing.assert_allclose(camera.K, expected.K)
    # Within the differences JPEG makes (the files are encoded turned, so their blocks differ).
    assert _rotation_deg(camera.c2w, expected.c2w) < 1.0
    assert _direction_deg(camera.c2w, expected.c2w) < 2.0
    _same_scene(scene, reference)


@pytest.mark.parametrize("kind, options", [("HEIF", {"quality": 90}), ("WEBP", {"quality": 90})])
def test_heic_and_webp_photos_build(upright, job_context, tmp_path, kind, options) -> None:
    blobs = [encode(sample_rgb(v), kind, exif_bytes(1, FOCAL_35MM), **options) for v in VIEWS]
    meta, scene = _build(job_context, tmp_path, blobs)
    assert [p["format"] for p in meta["photos"]] == [kind, kind]
    assert meta["fov_source"] == "exif" and meta["num_gaussians"] > 100_000
    _same_scene(scene, upright[1], colour_tolerance=8 / 255, shape_tolerance=0.07)


def _fov_of(camera) -> float:
    return math.degrees(2 * math.atan(camera.width / 2 / camera.K[0, 0]))


@pytest.mark.parametrize("shape", ["square_crop_upscaled", "portrait"])
def test_mixed_sizes_build_with_each_photos_own_intrinsics(
    upright, job_context, tmp_path, shape
) -> None:
    """Photo B from another camera: a square crop of view B (a narrower field of view) at
    another resolution, or view B taken in portrait (the camera rolled; 480 x 640 stored
    upright). Each carries its own focal length (FocalLength and the sensor's resolution)."""
    focal_px = fov_to_focal_px(sample_fov_deg(), 640)
    view_a, view_b = sample_rgb(VIEWS[0]), sample_rgb(VIEWS[1])
    if shape == "portrait":
        photo_b, scale = np.ascontiguousarray(np.rot90(view_b, 1)), 1.0
    else:
        photo_b = cv2.resize(view_b[:, 80:560], (720, 720), interpolation=cv2.INTER_CUBIC)
        scale = 720 / 480
    blobs = [
        encode(view_a, "PNG", exif_bytes(focal_mm=50.0, focal_plane_px_per_cm=focal_px / 5.0)),
        encode(
            photo_b, "PNG", exif_bytes(focal_mm=50.0, focal_plane_px_per_cm=focal_px * scale / 5)
        ),
    ]
    meta, scene = _build(job_context, tmp_path, blobs)
    fov_b = math.degrees(2 * math.atan(photo_b.shape[1] / 2 / (focal_px * scale)))
    assert meta["fov_deg_per_photo"] == pytest.approx([sample_fov_deg(), fov_b], abs=1e-3)
    camera_a, camera_b = scene.reference_cameras
    assert (camera_a.width, camera_a.height) == (640, 480)
    expected_b = (480, 640) if shape == "portrait" else (640, 640)
    assert (camera_b.width, camera_b.height) == expected_b
    assert _fov_of(camera_a) == pytest.approx(sample_fov_deg())
    assert _fov_of(camera_b) == pytest.approx(fov_b)
    np.testing.assert_allclose(meta["reference_cameras"][1]["K"], camera_b.K)
    # The same cameras as the upright pair's (photo B's rolled a quarter turn in portrait),
    # and the same scene.
    expected = upright[1].reference_cameras[1].c2w
    assert _direction_deg(camera_b.c2w, expected) < 3.0
    axis = np.degrees(np.arccos(np.clip(camera_b.c2w[:3, 2] @ expected[:3, 2], -1, 1)))
    assert axis < 1.0
    roll = _rotation_deg(camera_b.c2w, expected)
    assert abs(roll - (90.0 if shape == "portrait" else 0.0)) < 1.0
    _same_scene(scene, upright[1], colour_tolerance=8 / 255, shape_tolerance=0.07)

"""The embedded stereo prior on the rendered sample pair (known cameras), its failure modes,
and the build_scene / load_scene / render_video handlers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from videoscene_backend.pipeline.contract import JobRequest
from videoscene_backend.pipeline.frame_store import read_frames
from videoscene_backend.pipeline.scene_jobs import build_scene, load_scene, render_video
from videoscene_backend.priors.stereo import StereoPrior
from videoscene_backend.priors.stereo.disparity import CONFIDENT
from videoscene_backend.priors.stereo.splats import (
    MAX_GAUSSIANS,
    OPACITY_CONFIDENT,
    OPACITY_FILLED,
)
from videoscene_backend.render import render, to_uint8
from videoscene_backend.scene.gaussians import SH_C0
from videoscene_protocol.cameras import blender_to_opencv_c2w, focal_px_to_fov
from videoscene_protocol.errors import ErrorCode, VideoSceneError

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)


def _truth() -> tuple[np.ndarray, np.ndarray, float]:
    cams = json.loads((SAMPLES / "cameras.json").read_text())
    a, b = (blender_to_opencv_c2w(np.array(cams[v]["matrix_world"])) for v in ("view_a", "view_b"))
    fov = focal_px_to_fov(cams["view_a"]["lens_mm"], cams["view_a"]["sensor_width_mm"])
    return a, b, fov


def _noop(*_args) -> None:
    return None


@pytest.fixture(scope="module")
def sample_scene():
    _, _, fov = _truth()
    return StereoPrior().build([_rgb("view_a.jpg"), _rgb("view_b.jpg")], fov, _noop, _noop)


def test_recovers_the_relative_pose_of_the_sample_cameras(sample_scene) -> None:
    a, b, _ = _truth()
    truth = np.linalg.inv(a) @ b
    estimate = sample_scene.reference_cameras[1].c2w
    cos = (np.trace(truth[:3, :3].T @ estimate[:3, :3]) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 3.0
    direction = truth[:3, 3] / np.linalg.norm(truth[:3, 3])
    assert np.degrees(np.arccos(np.dot(direction, estimate[:3, 3]))) < 10.0
    np.testing.assert_allclose(sample_scene.reference_cameras[0].c2w, np.eye(4))


def test_depth_up_to_scale_matches_the_known_ground_plane(sample_scene) -> None:
    """Matched pixels in the bottom fifth of view A see the ground plane z = 0; compare their
    depth. (Filled pixels, which B does not see, are guesses: bench/prior_quality.py measures
    those against ground truth.)"""
    a, b, _ = _truth()
    baseline = np.linalg.norm((np.linalg.inv(a) @ b)[:3, 3])
    points = sample_scene.means.numpy().astype(np.float64) * baseline  # to scene units
    camera = sample_scene.reference_cameras[0]
    pixels = (camera.K @ points.T).T
    matched = sample_scene.opacities.numpy() >= OPACITY_FILLED + CONFIDENT * (
        OPACITY_CONFIDENT - OPACITY_FILLED
    )
    low = (pixels[:, 1] / pixels[:, 2] > 0.8 * camera.height) & matched
    assert low.sum() > 100
    rays = (a[:3, :3] @ (points[low] / np.linalg.norm(points[low], axis=1, keepdims=True)).T).T
    true_distance = -a[2, 3] / rays[:, 2]
    ratio = np.median(np.linalg.norm(points[low], axis=1) / true_distance)
    assert 0.9 < ratio < 1.15  # measured 1.02 (10th-90th percentile 1.00-1.05) on these samples


def test_scene_is_valid_dense_and_coloured(sample_scene) -> None:
    sample_scene.validate()
    meta = sample_scene.meta
    assert meta["gaussians_a"] == 640 * 480  # one Gaussian per pixel of photo A
    assert 640 * 480 < sample_scene.num_gaussians <= MAX_GAUSSIANS
    extra = (
        meta["gaussians_b_disoccluded"]
        + meta["gaussians_behind_edges"]
        + meta["gaussians_beyond_frame"]
    )
    assert extra == sample_scene.num_gaussians - 640 * 480
    assert meta["prior"] == "stereo" and not meta["fov_assumed"]
    assert abs(meta["matched_fraction"] + meta["filled_fraction"] - 1.0) < 1e-3
    assert (sample_scene.opacities >= 0.85).all() and (sample_scene.means[:, 2] > 0).all()
    # Photo A's colours, fitted to its re-render: near the photo's own, sharpened.
    colours = (sample_scene.sh[: 640 * 480, 0] * SH_C0 + 0.5).numpy().reshape(480, 640, 3)
    photo = _rgb("view_a.jpg").astype(np.float64)
    assert np.median(np.abs(colours * 255 - photo)) < 8.0  # measured 3.9
    camera = sample_scene.reference_cameras[0]
    with torch.no_grad():
        out = render(sample_scene, torch.eye(4), torch.from_numpy(camera.K).float(), 640, 480)
    rendered = to_uint8(out.images)[0].astype(np.float64)
    psnr = 10 * np.log10(255.0**2 / np.mean((rendered - photo) ** 2))
    assert psnr > 30.0, psnr  # photo A, re-rendered at its own camera


@pytest.mark.parametrize(
    ("images", "code", "words"),
    [
        (lambda: [_rgb("view_a.jpg"), _rgb("view_a.jpg")], ErrorCode.PRIOR_FAILED, "identical"),
        (lambda: [_rgb("view_a.jpg")], ErrorCode.BAD_PARAMS, "2 photos"),
        (
            lambda: [np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640, 3), np.uint8) + 1],
            ErrorCode.PRIOR_FAILED,
            "texture",
        ),
        (
            lambda: [_rgb("view_a.jpg")[:40, :40], _rgb("view_b.jpg")],
            ErrorCode.BAD_IMAGE,
            "too small",
        ),
        (
            # a photo and its mirror image: 78 matches agree on a camera rolled 180 degrees
            lambda: [_rgb("view_a.jpg"), np.ascontiguousarray(_rgb("view_a.jpg")[:, ::-1])],
            ErrorCode.PRIOR_FAILED,
            "upright",
        ),
    ],
)
def test_failure_modes_name_their_cause(images, code, words) -> None:
    with pytest.raises(VideoSceneError) as info:
        StereoPrior().build(images(), None, _noop, _noop)
    assert info.value.code == code and words in info.value.message and info.value.hint


def test_near_pure_rotation_is_stitched_not_refused() -> None:
    """Issue #35: a turning camera builds one scene (both photos on one sphere), said weak."""
    image = _rgb("view_a.jpg")
    f = 500.0
    K = np.array([[f, 0, 320], [0, f, 240], [0, 0, 1]])
    angle = np.radians(4)
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    rotated = cv2.warpPerspective(image, K @ R @ np.linalg.inv(K), (640, 480))
    scene = StereoPrior().build([image, rotated], 65.0, _noop, _noop)
    assert scene.meta["mode"] == "rotation" and scene.meta["weak"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, job_context):
    ctx = job_context(tmp_path_factory.mktemp("job"))
    blobs = {
        "image_0": (SAMPLES / "view_a.jpg").read_bytes(),
        "image_1": (SAMPLES / "view_b.jpg").read_bytes(),
    }
    return ctx, build_scene(ctx, JobRequest("b", "build_scene", {"prior": "auto"}, blobs=blobs))


def test_build_scene_result(built) -> None:
    ctx, output = built
    meta = output.meta
    assert meta["prior"] == "stereo" and "no NoPoSplat checkpoint" in meta["prior_reason"]
    n = meta["num_gaussians"]
    assert {k: v.shape for k, v in output.arrays.items()} == {
        "means": (n, 3),
        "quats": (n, 4),
        "scales": (n, 3),
        "opacities": (n,),
        "colors": (n, 3),
    }
    assert output.arrays["colors"].min() >= 0 and output.arrays["colors"].max() <= 1
    assert (ctx.work_dir / "scene.ply").read_bytes() == output.blobs["scene.ply"]
    assert len(meta["reference_cameras"]) == 2 and meta["reference_cameras"][0]["width"] == 640
    assert {s for s, *_ in ctx.events} >= {"prior", "pose", "write"}


def test_render_video_coarse_frames_and_the_missing_weights_message(built) -> None:
    ctx, output = built
    cams = output.meta["reference_cameras"]
    c2w = np.stack([np.array(c["c2w"]) for c in cams])
    K = np.stack([np.array(c["K"]) for c in cams])
    params = {"scene_id": output.meta["scene_id"], "width": 160, "height": 120}
    K_small = K.copy()
    K_small[:, :2] *= 0.25
    result = render_video(
        ctx, JobRequest("r", "render_video", params, arrays={"c2w": c2w, "K": K_small})
    )
    assert not result.arrays  # the frames are in the job's folder, fetched by range
    assert result.meta["frames"]["kinds"] == ["coarse"] and result.meta["frames"]["ready"] == 2
    frames = read_frames(ctx.work_dir, "coarse")
    assert frames.shape == (2, 120, 160, 3) and frames.dtype == np.uint8
    assert result.meta["refined"] is False and "model.safetensors" in result.meta["refine_message"]
    assert ctx.frames[-1]["ready"] == 2 and ctx.frames[-1]["total"] == 2
    # The rendered reference view resembles the photo it came from.
    photo = cv2.resize(_rgb("view_a.jpg"), (160, 120), interpolation=cv2.INTER_AREA).astype(float)
    covered = frames[0].sum(axis=2) > 0
    assert covered.mean() > 0.98  # every pixel of photo A is a Gaussian
    assert np.abs(frames[0].astype(float) - photo).mean() < 12


def test_load_scene_keeps_the_requested_id(built, tmp_path) -> None:
    ctx, output = built
    loaded = load_scene(
        ctx,
        JobRequest(
            "l", "load_scene", {"scene_id": "again"}, blobs={"scene.ply": output.blobs["scene.ply"]}
        ),
    )
    assert loaded.meta == {
        "scene_id": "again",
        "num_gaussians": output.meta["num_gaussians"],
        "reference_cameras": output.meta["reference_cameras"],
    }
    assert ctx.scenes.get("again").num_gaussians == output.meta["num_gaussians"]


@pytest.mark.parametrize(
    ("params", "arrays", "code"),
    [
        ({"scene_id": "nope"}, {}, ErrorCode.UNKNOWN_SCENE),
        ({"width": 10}, {}, ErrorCode.BAD_PARAMS),
        # Params are checked before any work, whatever weights are installed (none here).
        ({"memory_mode": "bf16"}, {}, ErrorCode.BAD_PARAMS),
        ({"near": 2.0, "far": 1.0}, {}, ErrorCode.BAD_PARAMS),
        ({"refine": "no"}, {}, ErrorCode.BAD_PARAMS),
        ({"seed": 1.5}, {}, ErrorCode.BAD_PARAMS),
        ({"guidance_sclae": 3.0}, {}, ErrorCode.BAD_PARAMS),
        ({}, {}, ErrorCode.BAD_CAMERA),
        ({}, {"c2w": np.full((1, 4, 4), np.nan), "K": np.eye(3)[None]}, ErrorCode.BAD_CAMERA),
        ({}, {"c2w": np.diag([2.0, 2, 2, 1])[None], "K": np.eye(3)[None]}, ErrorCode.BAD_CAMERA),
        ({}, {"c2w": np.eye(4)[None], "K": np.zeros((1, 3, 3))}, ErrorCode.BAD_CAMERA),
    ],
)
def test_render_video_rejects_bad_input(built, params, arrays, code) -> None:
    ctx, output = built
    full = {"scene_id": output.meta["scene_id"], **params}
    rendered_before = sum(stage == "render" for stage, *_ in ctx.events)
    with pytest.raises(VideoSceneError) as info:
        render_video(ctx, JobRequest("r", "render_video", full, arrays=arrays))
    assert info.value.code == code
    assert sum(stage == "render" for stage, *_ in ctx.events) == rendered_before  # no work done


@pytest.mark.parametrize(
    ("blobs", "code"),
    [
        ({"image_0": b"\x89PNG broken", "image_1": b"x"}, ErrorCode.BAD_IMAGE),
        (
            {
                "image_0": cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))[1].tobytes(),
                "image_1": b"x",
            },
            ErrorCode.BAD_IMAGE,
        ),
        ({"image_0": b"only one"}, ErrorCode.BAD_PARAMS),
    ],
)
def test_build_scene_rejects_bad_photos(job_context, tmp_path, blobs, code) -> None:
    with pytest.raises(VideoSceneError) as info:
        build_scene(
            job_context(tmp_path), JobRequest("b", "build_scene", {"prior": "stereo"}, blobs=blobs)
        )
    assert info.value.code == code


def test_all_black_photos_fail_with_a_named_cause(job_context, tmp_path) -> None:
    black = cv2.imencode(".png", np.zeros((480, 640, 3), np.uint8))[1].tobytes()
    with pytest.raises(VideoSceneError) as info:
        build_scene(
            job_context(tmp_path),
            JobRequest("b", "build_scene", {}, blobs={"image_0": black, "image_1": black}),
        )
    assert info.value.code == ErrorCode.PRIOR_FAILED


def test_asking_for_noposplat_without_its_checkpoint_names_the_file(job_context, tmp_path) -> None:
    blobs = {
        "image_0": (SAMPLES / "view_a.jpg").read_bytes(),
        "image_1": (SAMPLES / "view_b.jpg").read_bytes(),
    }
    with pytest.raises(VideoSceneError) as info:
        build_scene(
            job_context(tmp_path),
            JobRequest("b", "build_scene", {"prior": "noposplat"}, blobs=blobs),
        )
    assert (
        info.value.code == ErrorCode.WEIGHTS_MISSING
        and "mixRe10kDl3dv_512x512.ckpt" in info.value.message
    )

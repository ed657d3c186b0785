"""render_video end to end on the tiny model: chained windows on refined seams, short paths,
coarse-only streaming, photo conditions, cancellation; frames on disk, one per camera."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from videoscene_backend.pipeline.contract import JobRequest
from videoscene_backend.pipeline.frame_store import read_frames, read_manifest
from videoscene_backend.pipeline.scene_jobs import render_video
from videoscene_backend.render import render, to_uint8
from videoscene_backend.scene.flythrough import default_flythrough
from videoscene_backend.scene.gaussians import GaussianScene, PinholeCamera
from videoscene_backend.video.canvas import fit_canvas, place_photo
from videoscene_backend.video.refiner import VideoRefiner
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .conftest import TINY_FRAMES, TINY_SIZE

PHOTO_SIZE = 128


def _camera(x: float, yaw_deg: float, width: int, height: int) -> PinholeCamera:
    c2w = np.eye(4)
    yaw = np.radians(yaw_deg)
    c2w[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
    c2w[:3, 3] = (x, 0.0, 0.0)
    focal = 0.9 * width
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    return PinholeCamera(c2w, K, width, height)


@pytest.fixture(scope="module")
def scene() -> GaussianScene:
    g = torch.Generator().manual_seed(3)
    count = 400
    means = torch.rand(count, 3, generator=g) * torch.tensor([3.0, 2.0, 2.0]) - torch.tensor(
        [1.5, 1.0, -3.0]
    )
    scene = GaussianScene(
        means=means,
        quats=torch.nn.functional.normalize(torch.randn(count, 4, generator=g), dim=-1),
        scales=torch.rand(count, 3, generator=g) * 0.1 + 0.05,
        opacities=torch.rand(count, generator=g) * 0.5 + 0.5,
        sh=torch.randn(count, 1, 3, generator=g) * 0.5,
    )
    cameras = [
        _camera(0.0, 0.0, PHOTO_SIZE, PHOTO_SIZE),
        _camera(0.4, -5.0, PHOTO_SIZE, PHOTO_SIZE),
    ]
    scene.reference_cameras = cameras
    scene.reference_images = [
        _draw(scene, c.c2w[None], c.K[None], PHOTO_SIZE, PHOTO_SIZE)[0] for c in cameras
    ]
    return scene


def _draw(scene, c2w, K, width, height) -> np.ndarray:
    out = render(
        scene, torch.from_numpy(np.asarray(c2w)), torch.from_numpy(np.asarray(K)), width, height
    )
    return to_uint8(out.images)


def _path(scene: GaussianScene, count: int, width: int, height: int):
    cam0, cam1 = scene.reference_cameras
    scale = max(width, height) / PHOTO_SIZE
    K = np.array(cam0.K)
    K[:2] *= scale
    K[0, 2], K[1, 2] = width / 2, height / 2
    ends = [PinholeCamera(c.c2w, K, width, height) for c in (cam0, cam1)]
    return default_flythrough(*ends, count)


@pytest.fixture()
def calls(monkeypatch):
    """Every VideoRefiner.refine call: (coarse input, first, last, refined output)."""
    recorded = []
    original = VideoRefiner.refine

    def recording(self, coarse, first, last, options, progress, check_cancelled):
        out, report = original(self, coarse, first, last, options, progress, check_cancelled)
        recorded.append(
            {"input": coarse.copy(), "first": first.copy(), "last": last.copy(), "out": out.copy()}
        )
        return out, report

    monkeypatch.setattr(VideoRefiner, "refine", recording)
    return recorded


def _run(ctx, scene, count, width, height, **params):
    scene_id = ctx.scenes.put(scene)
    c2w, K = _path(scene, count, width, height)
    request = JobRequest(
        "r",
        "render_video",
        {"scene_id": scene_id, "width": width, "height": height, **params},
        arrays={"c2w": c2w, "K": K},
    )
    return render_video(ctx, request), c2w, K


def test_long_path_chains_windows_on_refined_seams(
    job_context, tmp_path, tiny_checkpoint, scene, calls
):
    ctx = job_context(tmp_path, tiny_checkpoint)
    width, height = 48, 27  # 16:9 onto the tiny model's 3:2 canvas
    output, c2w, K = _run(ctx, scene, 20, width, height, seed=5)
    meta = output.meta
    assert meta["refined"] is True and meta["num_frames"] == 20
    # F = 9: windows start at 0, 8 and 11 (the last aligned to the end of the path).
    assert meta["windowing"]["windows"] == 3 and meta["windowing"]["seams"] == [8, 11]
    assert [(e["first"], e["count"], e["ready"]) for e in ctx.frames] == [
        (0, 9, 9),
        (9, 3, 12),
        (12, 8, 20),
    ]
    assert [e["window"] for e in ctx.frames] == [0, 1, 2] and ctx.frames[0]["windows"] == 3

    assert len(calls) == 3
    assert all(call["input"].shape == (TINY_FRAMES, *TINY_SIZE, 3) for call in calls)
    # Window 0 starts from its first render; each later window from the refined frame the
    # window before it delivered last (its seam), bit for bit.
    np.testing.assert_array_equal(calls[0]["first"], calls[0]["input"][0])
    last_model_frame = {0: 8, 1: 11 - 8}  # seam 8 is window 0's frame 8; seam 11 is window 1's 3
    for k in (0, 1):
        np.testing.assert_array_equal(calls[k + 1]["first"], calls[k]["out"][last_model_frame[k]])
    for call in calls:
        np.testing.assert_array_equal(call["last"], call["input"][-1])

    refined = read_frames(tmp_path, "refined")
    coarse = read_frames(tmp_path, "coarse")
    assert refined.shape == coarse.shape == (20, height, width, 3)
    fit = fit_canvas(width, height, TINY_SIZE[1], TINY_SIZE[0])
    np.testing.assert_array_equal(
        refined[8], fit.cut_back(calls[0]["out"][8])
    )  # seam from window 0
    np.testing.assert_array_equal(refined[19], fit.cut_back(calls[2]["out"][-1]))
    # The coarse frames are renders at the requested size with the requested intrinsics.
    np.testing.assert_array_equal(
        coarse[[0, 13]], _draw(scene, c2w[[0, 13]], K[[0, 13]], width, height)
    )
    # The model saw the 16:9 view inside a taller canvas, not a stretched one.
    canvas_K = fit.canvas_intrinsics(K[13])
    np.testing.assert_array_equal(
        calls[2]["input"][13 - 11],
        _draw(scene, c2w[13][None], canvas_K[None], TINY_SIZE[1], TINY_SIZE[0])[0],
    )
    assert meta["frames"]["ready"] == 20 and meta["frames"]["kinds"] == ["refined", "coarse"]
    assert meta["canvas"]["offset_px"] == [0, 2]
    assert meta["video_model"]["sampler"] == {"condition_noise": "shared, exp(N(-3, 0.5))"}
    assert meta["video_model"]["weights"]["distilled_weights"]["complete"] is True
    assert "window 3/3" in " ".join(message for *_, message in ctx.events)


@pytest.mark.parametrize("count", [1, 3])
def test_short_paths_return_exactly_the_requested_frames(
    job_context, tmp_path, tiny_checkpoint, scene, calls, count
):
    ctx = job_context(tmp_path, tiny_checkpoint)
    output, c2w, K = _run(ctx, scene, count, 96, 64)  # the canvas size itself
    assert output.meta["windowing"]["windows"] == 1
    (call,) = calls
    assert call["input"].shape[0] == TINY_FRAMES  # sampled up to the model's length
    anchors = [0] if count == 1 else [0, 4, 8]
    coarse = read_frames(tmp_path, "coarse")
    np.testing.assert_array_equal(coarse, call["input"][anchors])  # the requested cameras exactly
    np.testing.assert_array_equal(coarse, _draw(scene, c2w, K, 96, 64))
    np.testing.assert_array_equal(read_frames(tmp_path, "refined"), call["out"][anchors])


def test_coarse_only_streams_window_by_window(job_context, tmp_path, scene):
    ctx = job_context(tmp_path)
    output, c2w, K = _run(ctx, scene, 100, 32, 24, refine=False)
    assert output.meta["refined"] is False and "refine: false" in output.meta["refine_message"]
    assert [(e["first"], e["ready"]) for e in ctx.frames] == [(0, 49), (49, 98), (98, 100)]
    assert all(e["kinds"] == ["coarse"] for e in ctx.frames)
    assert not (tmp_path / "refined").exists()
    coarse = read_frames(tmp_path, "coarse")
    assert len(coarse) == 100
    np.testing.assert_array_equal(coarse[[0, 99]], _draw(scene, c2w[[0, 99]], K[[0, 99]], 32, 24))


def test_photos_condition_the_first_and_the_last_window(
    job_context, tmp_path, tiny_checkpoint, scene, calls
):
    ctx = job_context(tmp_path, tiny_checkpoint)
    width, height = 60, 60
    output, c2w, K = _run(ctx, scene, 12, width, height, condition_source="photos")
    assert output.meta["windowing"]["windows"] == 2 and len(calls) == 2
    photos = output.meta["photo_conditions"]
    assert photos["aligned"] is True and photos["first"]["photo"] == "A" and not photos["message"]
    fit = fit_canvas(width, height, TINY_SIZE[1], TINY_SIZE[0])
    cam0, cam1 = scene.reference_cameras
    expected_first, coverage = place_photo(
        scene.reference_images[0], cam0.K, fit.canvas_intrinsics(K[0]), calls[0]["input"][0]
    )
    np.testing.assert_array_equal(calls[0]["first"], expected_first)
    expected_last, _ = place_photo(
        scene.reference_images[1], cam1.K, fit.canvas_intrinsics(K[-1]), calls[1]["input"][-1]
    )
    np.testing.assert_array_equal(calls[1]["last"], expected_last)
    # Between them: window 0 ends on its render, window 1 starts from the refined seam.
    np.testing.assert_array_equal(calls[0]["last"], calls[0]["input"][-1])
    np.testing.assert_array_equal(calls[1]["first"], calls[0]["out"][3])
    assert output.meta["photo_conditions"]["coverage"]["first"] == pytest.approx(coverage, abs=1e-3)
    assert output.meta["video_model"]["leap_timestep"] == 549


def test_photos_off_the_path_ends_are_reported(job_context, tmp_path, tiny_checkpoint, scene):
    ctx = job_context(tmp_path, tiny_checkpoint)
    scene_id = ctx.scenes.put(scene)
    c2w, K = _path(scene, 4, 48, 48)
    c2w[-1, :3, 3] += (0.0, 0.2, 0.0)  # the path ends half a baseline below reference camera B
    request = JobRequest(
        "r",
        "render_video",
        {"scene_id": scene_id, "width": 48, "height": 48, "condition_source": "photos"},
        arrays={"c2w": c2w, "K": K},
    )
    photos = render_video(ctx, request).meta["photo_conditions"]
    assert photos["first"]["aligned"] is True and photos["last"]["aligned"] is False
    assert photos["aligned"] is False and "photo B does not line up" in photos["message"]


def test_cancelled_job_keeps_the_windows_it_finished(job_context, tmp_path, scene):
    ctx = job_context(tmp_path)

    def cancel_after_first_window() -> None:
        if ctx.frames:
            raise VideoSceneError(ErrorCode.CANCELLED, "cancelled")

    ctx.check_cancelled = cancel_after_first_window
    with pytest.raises(VideoSceneError):
        _run(ctx, scene, 60, 32, 24, refine=False)
    manifest = read_manifest(tmp_path)
    assert manifest.ready == 49 and manifest.count == 60
    assert len(read_frames(tmp_path, "coarse")) == 49

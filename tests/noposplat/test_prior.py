"""The NoPoSplat prior end to end with a tiny checkpoint: preprocessing, the build_scene job."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from videoscene_backend.pipeline.contract import JobRequest
from videoscene_backend.pipeline.scene_jobs import build_scene
from videoscene_backend.priors.noposplat import prior as prior_module
from videoscene_backend.priors.noposplat.prior import normalized_focal, preprocess
from videoscene_backend.scene.ply import load_ply
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .conftest import TINY, look_at_pose, points_seen_by, predict_known_points

SIZE = TINY.image_size
TRUE_POSE = look_at_pose(6.0, 0.35)


def test_preprocess_centre_crops_to_a_square_and_maps_to_minus_one_one() -> None:
    image = np.zeros((80, 120, 4), np.uint8)
    image[:, :20] = 255  # a left band the centre crop must cut away
    image[:, 20:100, 1] = 200
    image[..., 3] = 7  # alpha is dropped
    tensor, square = preprocess(image, SIZE)
    assert tensor.shape == (1, 3, SIZE, SIZE) and square.shape == (SIZE, SIZE, 3)
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert (square[..., 0] == 0).all() and (np.abs(square[..., 1].astype(int) - 200) <= 1).all()


def test_focal_defaults_to_the_seeds_and_follows_a_given_fov() -> None:
    assert normalized_focal((480, 640, 3), None) == 0.8
    # 60 degrees across 640 px: focal 554 px, over the 480 px square crop.
    assert math.isclose(
        normalized_focal((480, 640, 3), 60.0), 320 / math.tan(math.radians(30)) / 480
    )


def _photo_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def tiny_prior(monkeypatch):
    """The real loader and network at the tiny size, with the point head's output replaced by
    the points a perfect network would predict for a known second camera: the random weights
    cannot predict geometry, and everything after the point head is what is under test."""
    K = np.array([[0.8 * SIZE, 0, SIZE / 2], [0, 0.8 * SIZE, SIZE / 2], [0, 0, 1.0]])
    points = np.stack([points_seen_by(np.eye(4), K, SIZE), points_seen_by(TRUE_POSE, K, SIZE)])
    predict_known_points(monkeypatch, points)


def _build(job_context, tmp_path, tiny_checkpoint, params):
    ctx = job_context(tmp_path, tiny_checkpoint.parent.parent)
    blobs = {"image_0": _photo_bytes(0), "image_1": _photo_bytes(1)}
    return ctx, build_scene(ctx, JobRequest("np", "build_scene", params, blobs=blobs))


def test_build_scene_runs_noposplat_when_its_checkpoint_is_present(
    job_context, tmp_path, tiny_checkpoint, tiny_prior
) -> None:
    ctx, output = _build(
        job_context, tmp_path, tiny_checkpoint, {"prior": "auto", "pose_refine_steps": 0}
    )
    meta = output.meta
    assert meta["prior"] == "noposplat" and str(tiny_checkpoint) in meta["prior_reason"]
    assert meta["num_gaussians"] == 2 * SIZE * SIZE
    assert meta["prior_meta"]["pose_refine_steps"] == 0
    assert meta["prior_meta"]["pnp_inliers"] > 0.9 * SIZE * SIZE
    first, second = (np.array(camera["c2w"]) for camera in meta["reference_cameras"])
    np.testing.assert_allclose(first, np.eye(4))
    np.testing.assert_allclose(second, TRUE_POSE, atol=1e-3)
    assert meta["reference_cameras"][1]["width"] == SIZE
    np.testing.assert_allclose(meta["reference_cameras"][0]["K"][0][0], 0.8 * SIZE)
    scene = ctx.scenes.get(meta["scene_id"])
    assert scene.sh_degree == 3  # degree 4 is predicted, but never rendered by the seed
    np.testing.assert_allclose(
        scene.means[: SIZE * SIZE].numpy().reshape(SIZE, SIZE, 3),
        points_seen_by(np.eye(4), np.array(meta["reference_cameras"][0]["K"]), SIZE),
        atol=1e-5,
    )
    ply = load_ply((tmp_path / "scene.ply").read_bytes())
    assert ply.num_gaussians == 2 * SIZE * SIZE and len(ply.reference_cameras) == 2
    stages = [stage for stage, _, _ in ctx.events]
    assert stages.index("prior") < stages.index("pose")
    # The network stays warm in the service's model cache for the next job.
    assert ctx.models.loaded() == ["prior:noposplat"]


def test_refinement_steps_run_through_the_cpu_renderer(
    job_context, tmp_path, tiny_checkpoint, tiny_prior
) -> None:
    _, output = _build(
        job_context, tmp_path, tiny_checkpoint, {"prior": "noposplat", "pose_refine_steps": 2}
    )
    second = np.array(output.meta["reference_cameras"][1]["c2w"])
    assert output.meta["prior_meta"]["pose_refine_steps"] == 2
    # Two Adam steps of 0.005 move the camera a little, never far.
    assert 0 < np.abs(second[:3, 3] - TRUE_POSE[:3, 3]).max() < 0.02


@pytest.mark.parametrize("steps", [-1, 1001, 2.5, "10", True])
def test_bad_refinement_steps_are_refused(job_context, tmp_path, tiny_checkpoint, steps) -> None:
    with pytest.raises(VideoSceneError) as caught:
        _build(job_context, tmp_path, tiny_checkpoint, {"pose_refine_steps": steps})
    assert caught.value.code == ErrorCode.BAD_PARAMS and "pose_refine_steps" in caught.value.message


def test_a_network_predicting_nan_is_a_named_prior_failure(
    job_context, tmp_path, tiny_checkpoint, monkeypatch
) -> None:
    real_loader = prior_module.load_network

    def broken(path, config=None, device="cpu"):
        network = real_loader(path, config, device)
        network.register_forward_hook(
            lambda _m, _a, out: dataclasses.replace(out, points=out.points * float("nan"))
        )
        return network

    monkeypatch.setattr(prior_module, "REAL_CONFIG", TINY)
    monkeypatch.setattr(prior_module, "load_network", broken)
    with pytest.raises(VideoSceneError) as caught:
        _build(job_context, tmp_path, tiny_checkpoint, {"prior": "auto"})
    assert caught.value.code == ErrorCode.PRIOR_FAILED and "non-finite" in caught.value.message


def test_the_cpu_refinement_grid_keeps_every_factor_th_pixel_of_both_views() -> None:
    from videoscene_backend.priors.noposplat.prior import pixel_grid_subsample
    from videoscene_backend.scene.gaussians import GaussianScene

    n = 2 * 8 * 8
    index = torch.arange(n, dtype=torch.float32)
    scene = GaussianScene(
        means=index[:, None].repeat(1, 3),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.01),
        opacities=torch.full((n,), 0.5),
        sh=torch.zeros(n, 16, 3),
    )
    sparse = pixel_grid_subsample(scene, 8, 4)
    # view 0: pixels (0,0) (0,4) (4,0) (4,4); view 1 the same, 64 further on
    assert sparse.means[:, 0].tolist() == [0, 4, 32, 36, 64, 68, 96, 100]
    assert torch.allclose(sparse.scales, torch.full((8, 3), 0.04))
    sparse.validate()
    assert pixel_grid_subsample(scene, 8, 1) is scene

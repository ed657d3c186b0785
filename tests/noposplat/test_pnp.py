"""The second camera's pose: PnP on predicted points, then photometric refinement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from videoscene_backend.priors.noposplat.pnp import pose_from_points, refine_pose
from videoscene_backend.render import render, to_uint8
from videoscene_backend.scene.gaussians import GaussianScene
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .conftest import look_at_pose, points_seen_by

SIZE = 64
K = np.array([[0.8 * SIZE, 0, SIZE / 2], [0, 0.8 * SIZE, SIZE / 2], [0, 0, 1.0]])


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    cosine = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def test_pnp_recovers_a_known_pose_from_per_pixel_points() -> None:
    truth = look_at_pose(8.0, 0.4)
    points = points_seen_by(truth, K, SIZE)
    rng = np.random.default_rng(0)
    points += rng.normal(scale=0.002, size=points.shape)  # a point head is never exact
    confident = rng.random((SIZE, SIZE)) > 0.3
    c2w, inliers = pose_from_points(points, confident, K)
    assert rotation_error_deg(c2w, truth) < 0.5
    assert np.linalg.norm(c2w[:3, 3] - truth[:3, 3]) < 0.01
    assert inliers > 0.9 * confident.sum()


def test_pnp_survives_outliers() -> None:
    truth = look_at_pose(-5.0, 0.3)
    points = points_seen_by(truth, K, SIZE)
    rng = np.random.default_rng(1)
    wild = rng.random((SIZE, SIZE)) < 0.2  # a fifth of the pixels are nonsense
    points[wild] = rng.normal(scale=3.0, size=(int(wild.sum()), 3))
    c2w, inliers = pose_from_points(points, np.ones((SIZE, SIZE), bool), K)
    assert rotation_error_deg(c2w, truth) < 0.5
    assert inliers <= SIZE * SIZE - wild.sum() + 50


def test_too_few_confident_points_is_a_named_prior_failure() -> None:
    points = points_seen_by(np.eye(4), K, SIZE)
    confident = np.zeros((SIZE, SIZE), bool)
    confident[:5, :5] = True
    with pytest.raises(VideoSceneError) as caught:
        pose_from_points(points, confident, K)
    assert (
        caught.value.code == ErrorCode.PRIOR_FAILED
        and "25 confident points" in caught.value.message
    )


def _textured_wall() -> GaussianScene:
    """A 48 x 48 grid of small opaque Gaussians 3 units away with a two-frequency colour texture."""
    rows, cols = np.mgrid[0:48, 0:48]
    xy = (np.stack([cols, rows], -1).reshape(-1, 2) - 23.5) * 0.06
    means = np.concatenate([xy, np.full((len(xy), 1), 3.0)], 1)
    texture = np.stack(
        [np.sin(cols / 3.0), np.cos(rows / 4.0), np.sin((cols + rows) / 5.0)], -1
    ).reshape(-1, 3)
    n = len(means)
    return GaussianScene(
        means=torch.tensor(means, dtype=torch.float32),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.full((n, 3), 0.035),
        opacities=torch.full((n,), 0.95),
        sh=torch.tensor(texture * 0.4, dtype=torch.float32)[:, None] / 0.28209479177387814,
    )


def test_photometric_refinement_pulls_a_perturbed_pose_towards_the_truth() -> None:
    scene = _textured_wall()
    truth = look_at_pose(2.0, 0.1)
    target = to_uint8(
        render(
            scene,
            torch.tensor(truth, dtype=torch.float32),
            torch.tensor(K, dtype=torch.float32),
            SIZE,
            SIZE,
        ).images
    )[0]
    start = truth.copy()
    start[:3, 3] += [0.04, -0.03, 0.0]
    start[:3, :3] = look_at_pose(3.0, 0)[:3, :3]
    refined = refine_pose(
        scene, start, K, target, steps=40, size=SIZE, check_cancelled=lambda: None
    )
    before = (
        np.linalg.norm(start[:3, 3] - truth[:3, 3])
        + np.radians(rotation_error_deg(start, truth)) * 3
    )
    after = (
        np.linalg.norm(refined[:3, 3] - truth[:3, 3])
        + np.radians(rotation_error_deg(refined, truth)) * 3
    )
    assert after < 0.5 * before
    assert (
        refine_pose(scene, start, K, target, steps=0, size=SIZE, check_cancelled=lambda: None)
        is start
    )


def test_refinement_stops_when_the_job_is_cancelled() -> None:
    calls = []

    def cancel_on_third():
        calls.append(1)
        if len(calls) == 3:
            raise VideoSceneError(ErrorCode.CANCELLED, "cancelled", "")

    scene = _textured_wall()
    target = np.zeros((SIZE, SIZE, 3), np.uint8)
    with pytest.raises(VideoSceneError):
        refine_pose(
            scene, np.eye(4), K, target, steps=50, size=SIZE, check_cancelled=cancel_on_third
        )
    assert len(calls) == 3

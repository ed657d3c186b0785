"""Pose of a view from its per-pixel 3D points (PnP), and an optional photometric refinement."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from videoscene_protocol.errors import ErrorCode, VideoSceneError

MIN_POINTS = 100


def pose_from_points(
    points: np.ndarray, confident: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, int]:
    """points (H, W, 3) seen by a camera with pixel intrinsics K, confident (H, W) bool ->
    (camera-to-world 4x4 in the points' frame, inlier count). RANSAC SQPnP, 100 iterations, 5 px
    (the seed's settings), then a least-squares polish on the inliers."""
    rows, cols = np.nonzero(confident)
    if len(rows) < MIN_POINTS:
        raise VideoSceneError(
            ErrorCode.PRIOR_FAILED,
            f"Only {len(rows)} confident points to locate the second camera (need {MIN_POINTS}).",
            "Use photos with more overlap and texture.",
        )
    pixels = np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)
    world = points[rows, cols].astype(np.float64)
    K = K.astype(np.float64)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        world,
        pixels,
        K,
        None,
        iterationsCount=100,
        reprojectionError=5.0,
        flags=cv2.SOLVEPNP_SQPNP,
    )
    if not ok or inliers is None or len(inliers) < MIN_POINTS // 2:
        raise VideoSceneError(
            ErrorCode.PRIOR_FAILED,
            "The second camera's pose could not be found (PnP failed).",
            "Use photos with more overlap.",
        )
    # RANSAC's answer comes from a minimal sample; polish it on all inliers (Levenberg-Marquardt).
    keep = inliers.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(world[keep], pixels[keep], K, None, rvec, tvec)
    R, _ = cv2.Rodrigues(rvec)
    c2w = np.eye(4)
    c2w[:3, :3] = R.T
    c2w[:3, 3] = (-R.T @ tvec).ravel()
    return c2w, int(len(inliers))


def _se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """Twist (rho, theta) -> 4x4 rigid transform."""
    rho, theta = xi[:3], xi[3:]
    angle = theta.norm().clamp_min(1e-12)
    axis = theta / angle
    zero = torch.zeros((), dtype=xi.dtype)
    skew = torch.stack(
        [
            torch.stack([zero, -axis[2], axis[1]]),
            torch.stack([axis[2], zero, -axis[0]]),
            torch.stack([-axis[1], axis[0], zero]),
        ]
    )
    eye = torch.eye(3, dtype=xi.dtype)
    R = eye + torch.sin(angle) * skew + (1 - torch.cos(angle)) * skew @ skew
    V = (
        eye
        + (1 - torch.cos(angle)) / angle * skew
        + (angle - torch.sin(angle)) / angle * skew @ skew
    )
    top = torch.cat([R, (V @ rho)[:, None]], dim=1)
    return torch.cat([top, torch.tensor([[0, 0, 0, 1]], dtype=xi.dtype)], dim=0)


def structure_loss(rendered: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """1 - the SSIM structure term, (N, 3, H, W) images."""
    pad = window // 2
    mean_a = F.avg_pool2d(rendered, window, 1, pad)
    mean_b = F.avg_pool2d(target, window, 1, pad)
    var_a = F.avg_pool2d(rendered * rendered, window, 1, pad) - mean_a**2
    var_b = F.avg_pool2d(target * target, window, 1, pad) - mean_b**2
    cov = F.avg_pool2d(rendered * target, window, 1, pad) - mean_a * mean_b
    c3 = (0.03**2) / 2
    return 1 - ((cov + c3) / (var_a.clamp_min(0).sqrt() * var_b.clamp_min(0).sqrt() + c3)).mean()


def refine_pose(
    scene,
    c2w: np.ndarray,
    K: np.ndarray,
    target: np.ndarray,
    steps: int,
    size: int,
    check_cancelled: Callable[[], None],
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Adam (lr 0.005) on an se(3) delta of the camera through the differentiable renderer
    (gsplat when `device` is CUDA, the torch renderer otherwise), minimizing 1 - SSIM structure
    against `target` (RGB uint8, square, K in its pixels) at size x size. check_cancelled runs
    each step and, through the renderer, per tile batch of the forward and backward passes."""
    from ...render import render

    if steps <= 0:
        return c2w
    scene = scene.to(device)
    scale = size / target.shape[1]
    K_small = torch.tensor(K, dtype=torch.float32) * torch.tensor([[scale], [scale], [1.0]])
    image = torch.from_numpy(target).float().permute(2, 0, 1)[None] / 255.0
    image = F.interpolate(
        image, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    ).to(device)
    w2c = torch.linalg.inv(torch.tensor(c2w, dtype=torch.float32))
    delta = torch.zeros(6, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=0.005)
    for _ in range(steps):
        check_cancelled()
        pose = torch.linalg.inv(_se3_exp(delta) @ w2c)
        rendered = render(
            scene,
            pose[None],
            K_small[None],
            size,
            size,
            backend="auto",
            check_cancelled=check_cancelled,
        ).images.permute(0, 3, 1, 2)
        loss = structure_loss(rendered, image)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return torch.linalg.inv(_se3_exp(delta) @ w2c).double().numpy()

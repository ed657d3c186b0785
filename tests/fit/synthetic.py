"""A small synthetic world for the fit tests: a textured wall of Gaussians, a parent scene
that holds only its middle, and cameras that pan beyond it."""

from __future__ import annotations

import numpy as np
import torch
from videoscene_backend.render import render, to_uint8
from videoscene_backend.scene.gaussians import SH_C0, GaussianScene, PinholeCamera

WIDTH, HEIGHT = 64, 48
K = np.array([[60.0, 0, WIDTH / 2], [0, 60.0, HEIGHT / 2], [0, 0, 1]])


def wall(half_width: float, spacing: float = 0.1, depth: float = 4.0) -> GaussianScene:
    xs = np.arange(-half_width, half_width + 1e-9, spacing)
    ys = np.arange(-2.0, 2.0 + 1e-9, spacing)
    gx, gy = np.meshgrid(xs, ys)
    means = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, depth)], axis=1)
    colours = 0.5 + 0.4 * np.stack(
        [np.sin(3 * gx.ravel()), np.cos(2 * gy.ravel()), np.sin(gx.ravel() + gy.ravel())], axis=1
    )
    count = len(means)
    sh = torch.zeros(count, 1, 3)
    sh[:, 0] = torch.from_numpy((colours - 0.5) / SH_C0).float()
    quats = torch.zeros(count, 4)
    quats[:, 0] = 1
    camera = PinholeCamera(np.eye(4), K.copy(), WIDTH, HEIGHT)
    return GaussianScene(
        torch.from_numpy(means).float(),
        quats,
        torch.full((count, 3), spacing * 0.6),
        torch.full((count,), 0.95),
        sh,
        reference_cameras=[camera, camera],
    )


def panning_cameras(count: int, reach: float = 1.6) -> tuple[np.ndarray, np.ndarray]:
    c2w = np.repeat(np.eye(4)[None], count, axis=0)
    c2w[:, 0, 3] = np.linspace(-reach, reach, count)
    return c2w, np.repeat(K[None], count, axis=0)


def frames_of(scene: GaussianScene, c2w: np.ndarray, Ks: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = render(scene, torch.from_numpy(c2w), torch.from_numpy(Ks), WIDTH, HEIGHT)
    return to_uint8(out.images)


def black_fraction(scene: GaussianScene, c2w: np.ndarray, Ks: np.ndarray) -> float:
    with torch.no_grad():
        out = render(
            scene, torch.from_numpy(c2w), torch.from_numpy(Ks), WIDTH, HEIGHT, return_alpha=True
        )
    return float((out.alpha < 0.5).float().mean())

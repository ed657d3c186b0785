"""A tiny NoPoSplat saved the way the released checkpoint is: a Lightning dict whose state_dict
holds the network under "encoder." beside training-only entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from videoscene_backend.priors.noposplat.network import NoPoSplatConfig, NoPoSplatNet

TINY = NoPoSplatConfig(
    image_size=64,
    enc_dim=32,
    enc_depth=2,
    enc_heads=2,
    dec_dim=24,
    dec_depth=12,  # the DPT hooks need 12 decoder blocks, as in the real network
    dec_heads=2,
    dpt_feature_dim=16,
    dpt_layer_dims=(8, 8, 8, 8),
)


def save_lightning_checkpoint(path: Path, state: dict[str, torch.Tensor], **extra) -> Path:
    """`extra`: more top-level entries, as Lightning writes (hyper_parameters, loops, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "epoch": 3,
            "global_step": 1000,
            "pytorch-lightning_version": "2.1.0",
            "state_dict": {
                **{f"encoder.{key}": value for key, value in state.items()},
                "losses.0.lpips.net.slice1.0.weight": torch.zeros(2, 3, 1, 1),  # training-only
            },
            **extra,
        },
        path,
    )
    return path


@pytest.fixture(scope="session")
def tiny_network() -> NoPoSplatNet:
    torch.manual_seed(0)
    return NoPoSplatNet(TINY).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_network) -> Path:
    """checkpoints/noposplat/mixRe10kDl3dv_512x512.ckpt with the tiny network's weights."""
    root = tmp_path_factory.mktemp("checkpoints")
    return save_lightning_checkpoint(
        root / "noposplat" / "mixRe10kDl3dv_512x512.ckpt", tiny_network.state_dict()
    )


def look_at_pose(angle_deg: float, baseline: float) -> np.ndarray:
    """A camera-to-world pose: moved sideways by `baseline` and turned about y by `angle_deg`."""
    angle = np.radians(angle_deg)
    c2w = np.eye(4)
    c2w[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    c2w[:3, 3] = [baseline, 0.05, 0.02]
    return c2w


def points_seen_by(c2w: np.ndarray, K: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) points of a wavy surface 2-3 units away, one per pixel of the camera
    c2w (pixel centres at +0.5), in world coordinates: what a perfect point head predicts."""
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    depth = 2.5 + 0.4 * np.sin(cols / size * 6) * np.cos(rows / size * 4)
    rays = np.stack(
        [(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(cols)], -1
    )
    camera_points = rays * depth[..., None]
    return camera_points @ c2w[:3, :3].T + c2w[:3, 3]


def predict_known_points(monkeypatch, points: np.ndarray) -> None:
    """The NoPoSplat prior's loader gives the real network at the tiny size, its point head's
    output replaced by `points` (2, H, W, 3): what a perfect network would predict. Random
    weights cannot predict geometry; everything after the point head is what tests exercise."""
    import dataclasses

    from videoscene_backend.priors.noposplat import prior as prior_module

    real_loader = prior_module.load_network

    def load_with_known_geometry(path, config=None, device="cpu"):
        network = real_loader(path, config, device)

        def replace_points(_module, _args, output):
            return dataclasses.replace(
                output,
                points=torch.tensor(points, dtype=torch.float32)[None],
                opacity=output.opacity.clamp_min(0.5),
            )

        network.register_forward_hook(replace_points)
        return network

    monkeypatch.setattr(prior_module, "REAL_CONFIG", TINY)
    monkeypatch.setattr(prior_module, "load_network", load_with_known_geometry)

"""A scaled-down `check --gpu` config: the same code path at a size the CPU runs in seconds."""

from __future__ import annotations

import numpy as np
import torch
from videoscene_backend.diagnostics.gpu_check import GpuCheckConfig
from videoscene_backend.diagnostics.realsize import VideoModelConfigs
from videoscene_backend.priors.noposplat.network import NoPoSplatConfig
from videoscene_backend.scene.gaussians import SH_C0, GaussianScene, PinholeCamera

TINY_VIDEO = VideoModelConfigs(
    transformer={
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "in_channels": 32,
        "out_channels": 16,
        "time_embed_dim": 32,
        "text_embed_dim": 32,
        "num_layers": 2,
        "sample_width": 6,
        "sample_height": 4,
        "sample_frames": 5,
        "patch_size": 2,
        "max_text_seq_length": 16,
        "use_rotary_positional_embeddings": True,
        "use_learned_positional_embeddings": True,
    },
    vae={
        "block_out_channels": (8, 8, 8, 8),
        "latent_channels": 16,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        # Twice the window: VAE tiling (balanced, low, lowest) starts above half of these.
        "sample_height": 64,
        "sample_width": 96,
        "scaling_factor": 0.7,
    },
)
TINY_PRIOR = NoPoSplatConfig(
    image_size=32,
    enc_dim=32,
    enc_depth=2,
    enc_heads=2,
    dec_dim=24,
    dec_depth=12,  # the DPT hooks need 12 decoder blocks
    dec_heads=2,
    dpt_feature_dim=16,
    dpt_layer_dims=(8, 8, 8, 8),
)
SIZE = (64, 48)


def small_scene() -> GaussianScene:
    """A textured wall 4 units away, two reference cameras 0.4 apart."""
    gx, gy = np.meshgrid(np.linspace(-2, 2, 40), np.linspace(-1.5, 1.5, 30))
    means = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, 4.0)], axis=1)
    count = len(means)
    sh = torch.zeros(count, 1, 3)
    sh[:, 0, 0] = torch.from_numpy(0.4 * np.sin(3 * gx.ravel()) / SH_C0).float()
    quats = torch.zeros(count, 4)
    quats[:, 0] = 1
    K = np.array([[60.0, 0, SIZE[0] / 2], [0, 60.0, SIZE[1] / 2], [0, 0, 1]])
    cameras = []
    for x in (-0.2, 0.2):
        c2w = np.eye(4)
        c2w[0, 3] = x
        cameras.append(PinholeCamera(c2w, K.copy(), *SIZE))
    return GaussianScene(
        torch.from_numpy(means).float(),
        quats,
        torch.full((count, 3), 0.06),
        torch.full((count,), 0.9),
        sh,
        reference_cameras=cameras,
    )


def tiny_config(**changes) -> GpuCheckConfig:
    values = dict(
        video=TINY_VIDEO,
        prior=TINY_PRIOR,
        render_size=SIZE,
        path_frames=5,
        cpu_render_frames=2,
        fit_steps=3,
        make_scene=small_scene,
    )
    values.update(changes)
    return GpuCheckConfig(**values)

"""The real-size builder of `check --gpu` on the meta device: exactly the published parameter
counts per module, and random weights that are finite, drawn on the device that holds them."""

from __future__ import annotations

import re
from math import prod
from pathlib import Path

import torch
from videoscene_backend.diagnostics.realsize import (
    REAL_VIDEO_MODEL,
    checkpoint_numel,
    materialize_random,
    parameter_count,
    prior_on_meta,
    resident_weight_bytes,
    video_models_on_meta,
)
from videoscene_backend.video.memory import mode_plan

# THUDM/CogVideoX-5b-I2V (CogvideX-Interpolation's base, same shapes): transformer/ holds
# 4.99 + 4.99 + 1.27 GB of bfloat16 shards = 11.25 GB = 2 bytes x (5,570,479,680 parameters +
# 54,607,872 learned positional embedding values); vae/ holds 862 MB of float32 =
# 4 bytes x 215,583,907. The model card calls it "5B"; docs/gpu-check.md lists the pages.
TRANSFORMER_PARAMETERS = 5_570_479_680
TRANSFORMER_CHECKPOINT_VALUES = 5_625_087_552
VAE_PARAMETERS = 215_583_907
# NoPoSplat as backend/priors/noposplat/network.py builds it; its checkpoint's "encoder." keys
# (tests/noposplat/expected_keys.txt, listed from the public source) hold 625,267,372 values:
# the DPT heads' scratch.layer_rn names a shared tensor twice.
NOPOSPLAT_PARAMETERS = 611_996_332
EXPECTED_KEYS = Path(__file__).resolve().parents[1] / "noposplat" / "expected_keys.txt"


def _published_noposplat_values() -> int:
    total = 0
    for line in EXPECTED_KEYS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            shape = line.split()[1]
            total += prod(int(n) for n in re.findall(r"\d+", shape))
    return total


def test_the_real_size_video_model_has_the_published_parameter_counts() -> None:
    transformer, vae = video_models_on_meta(REAL_VIDEO_MODEL)
    assert parameter_count(transformer) == TRANSFORMER_PARAMETERS
    assert checkpoint_numel(transformer) == TRANSFORMER_CHECKPOINT_VALUES
    assert parameter_count(vae) == checkpoint_numel(vae) == VAE_PARAMETERS
    assert REAL_VIDEO_MODEL.window == (49, 480, 720)
    assert REAL_VIDEO_MODEL.prompt_shape == (1, 226, 4096)


def test_the_real_size_prior_has_the_published_parameter_count() -> None:
    network = prior_on_meta()
    assert parameter_count(network) == NOPOSPLAT_PARAMETERS
    assert checkpoint_numel(network) == _published_noposplat_values() == 625_267_372


def test_resident_weights_follow_the_memory_plan() -> None:
    """bf16 keeps both models (11.25 GB + 0.43 GB), low the larger one, lowest the VAE and
    one transformer block: the lower bound that skips a mode on a small card."""
    device = torch.device("cuda")  # plans only: nothing is allocated
    bf16, low, lowest = (
        resident_weight_bytes(REAL_VIDEO_MODEL, mode_plan(mode, device))
        for mode in ("bf16", "low", "lowest")
    )
    assert bf16 == 2 * (TRANSFORMER_CHECKPOINT_VALUES + VAE_PARAMETERS)
    assert low == 2 * TRANSFORMER_CHECKPOINT_VALUES
    assert 2 * VAE_PARAMETERS < lowest < 2 * VAE_PARAMETERS + 2 * 200_000_000


def test_random_fill_is_in_place_finite_and_in_the_modes_dtype() -> None:
    from torch import nn

    with torch.device("meta"):
        module = nn.Sequential(nn.Linear(64, 32), nn.LayerNorm(32))
    materialize_random(module, torch.device("cpu"), torch.bfloat16, torch.device("cpu"), seed=3)
    weight = module[0].weight
    assert weight.device.type == "cpu" and weight.dtype == torch.bfloat16
    assert torch.isfinite(weight.float()).all() and weight.float().std() > 0.05  # ~1/sqrt(64)
    assert not weight.requires_grad

"""Checkpoint discovery, loading over the base weights (subset, prefix, refusals), real-size
configs on the meta device, scheduler math."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from videoscene_backend.video.checkpoints import (
    BASE_TRAINED_MODULES,
    REAL_PROMPT_SHAPE,
    REAL_TRANSFORMER_CONFIG,
    find_checkpoint,
    load_distilled_weights,
    load_prompt_embeds,
    real_size_state_shapes,
)
from videoscene_backend.video.memory import plan_memory
from videoscene_backend.video.refiner import VideoRefiner
from videoscene_backend.weights.state_dict import WeightsMismatch, match_subset
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .conftest import make_tiny_checkpoint


@pytest.fixture()
def checkpoint_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))


def test_missing_files_are_all_named_in_one_error(tmp_path: Path) -> None:
    with pytest.raises(VideoSceneError) as info:
        find_checkpoint(tmp_path)
    error = info.value
    assert error.code == ErrorCode.WEIGHTS_MISSING
    for name in (
        "vae/config.json",
        "transformer/config.json",
        "scheduler_config.json",
        "model.safetensors",
        "prompt_embeds.pt",
    ):
        assert name in error.message
    assert "videoscene-backend download" in error.hint


def test_one_missing_file_is_named_alone(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "videoscene" / "prompt_embeds.pt").unlink()
    with pytest.raises(VideoSceneError) as info:
        find_checkpoint(checkpoint_copy)
    assert (
        "prompt_embeds.pt" in info.value.message and "model.safetensors" not in info.value.message
    )


def test_prompt_embeds_in_safetensors_form_are_accepted(checkpoint_copy: Path) -> None:
    folder = checkpoint_copy / "videoscene"
    embeds = torch.load(folder / "prompt_embeds.pt", weights_only=True)
    (folder / "prompt_embeds.pt").unlink()
    save_file({"prompt_embeds": embeds}, folder / "prompt_embeds.safetensors")
    found = find_checkpoint(checkpoint_copy)
    assert torch.equal(load_prompt_embeds(found.prompt_embeds, 16, 32), embeds)


def test_prompt_embeds_of_the_wrong_shape_are_rejected(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / "videoscene" / "prompt_embeds.pt"
    torch.save(torch.zeros(1, 10, 32), path)
    with pytest.raises(VideoSceneError) as info:
        load_prompt_embeds(path, 16, 32)
    assert info.value.code == ErrorCode.WEIGHTS_INVALID and "(1, 10, 32)" in info.value.message


def test_distilled_weights_replace_the_base_weights(checkpoint_copy: Path) -> None:
    refiner = VideoRefiner.from_checkpoint(
        find_checkpoint(checkpoint_copy), plan_memory("fp32", torch.device("cpu"))
    )
    distilled = load_file(checkpoint_copy / "videoscene" / "model.safetensors")
    for key, value in refiner.transformer.state_dict().items():
        torch.testing.assert_close(value, distilled[key], check_dtype=False)


def _base_transformer(root: Path):
    from diffusers import CogVideoXTransformer3DModel

    return CogVideoXTransformer3DModel.from_pretrained(
        root / "cogvideox-interpolation" / "transformer"
    )


def _trained_by_the_base_project(key: str) -> bool:
    return any(name in key for name in BASE_TRAINED_MODULES)


def test_a_subset_file_goes_over_the_base_weights_and_says_which_groups(
    checkpoint_copy: Path,
) -> None:
    """The base project fine-tunes only some projections; a release holding just those loads
    (as the seed's strict=False does) and the report names exactly what was replaced."""
    path = checkpoint_copy / "videoscene" / "model.safetensors"
    distilled = load_file(path)
    subset = {k: v for k, v in distilled.items() if _trained_by_the_base_project(k)}
    save_file(subset, path)
    base = _base_transformer(checkpoint_copy).state_dict()
    refiner = VideoRefiner.from_checkpoint(
        find_checkpoint(checkpoint_copy), plan_memory("fp32", torch.device("cpu"))
    )
    for key, value in refiner.transformer.state_dict().items():
        expected = subset[key] if key in subset else base[key]
        torch.testing.assert_close(value, expected, check_dtype=False, msg=key)
    report = refiner.load_report["distilled_weights"]
    assert report["file"] == str(path) and not report["complete"]
    assert (report["tensors_replaced"], report["tensors_total"]) == (len(subset), len(base))
    assert report["groups_replaced"] == [
        "transformer_blocks.*.attn1.to_q",
        "transformer_blocks.*.attn1.to_v",
        "transformer_blocks.*.ff.net.0.proj",
        "transformer_blocks.*.ff.net.2",
        "proj_out",
    ]
    assert report["summary"].startswith(f"{len(subset)} of {len(base)} tensors replaced (")
    assert "keep the base model's weights" in report["summary"]


@pytest.mark.parametrize("prefix", ["module.", "transformer."])
def test_a_prefixed_file_from_distributed_training_loads(checkpoint_copy: Path, prefix) -> None:
    path = checkpoint_copy / "videoscene" / "model.safetensors"
    distilled = load_file(path)
    save_file({prefix + k: v for k, v in distilled.items()}, path)
    transformer = _base_transformer(checkpoint_copy)
    match = load_distilled_weights(transformer, path)
    assert match.complete and match.prefix == prefix
    assert f"(key prefix {prefix!r} stripped)" in match.summary()
    for key, value in transformer.state_dict().items():
        torch.testing.assert_close(value, distilled[key], check_dtype=False)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("extra", "1 unexpected keys (e.g. lora_A.weight)"),
        ("shape", "proj_out.bias: (3,) instead of (64,)"),
        ("empty", "it holds no tensors at all"),
        ("foreign", "none of its 2 keys is a key of the model (e.g. unet.a, unet.b)"),
        ("integer", "non-float tensors: proj_out.bias (I64)"),
    ],
)
def test_files_that_do_not_fit_are_refused_by_name(
    checkpoint_copy: Path, damage: str, expected: str
) -> None:
    path = checkpoint_copy / "videoscene" / "model.safetensors"
    weights = load_file(path)
    if damage == "extra":
        weights["lora_A.weight"] = torch.zeros(2)
    elif damage == "shape":
        weights["proj_out.bias"] = torch.zeros(3)
    elif damage == "empty":
        weights = {}
    elif damage == "foreign":
        weights = {"unet.a": torch.zeros(1), "unet.b": torch.zeros(1)}
    else:
        weights["proj_out.bias"] = torch.zeros(64, dtype=torch.int64)
    save_file(weights, path)
    transformer = _base_transformer(checkpoint_copy)
    before = {k: v.clone() for k, v in transformer.state_dict().items()}
    with pytest.raises(VideoSceneError) as info:
        load_distilled_weights(transformer, path)
    assert info.value.code == ErrorCode.WEIGHTS_INVALID
    assert expected in info.value.message and str(path) in info.value.message
    assert "videoscene-backend check" in info.value.hint
    for key, value in transformer.state_dict().items():  # refused before anything was copied
        assert torch.equal(value, before[key])


def test_corrupt_distilled_weights_are_reported(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / "videoscene" / "model.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(VideoSceneError) as info:
        VideoRefiner.from_checkpoint(
            find_checkpoint(checkpoint_copy), plan_memory("fp32", torch.device("cpu"))
        )
    assert info.value.code == ErrorCode.WEIGHTS_INVALID


def test_real_size_configs_on_the_meta_device() -> None:
    transformer, vae = real_size_state_shapes()
    hidden = (
        REAL_TRANSFORMER_CONFIG["num_attention_heads"]
        * REAL_TRANSFORMER_CONFIG["attention_head_dim"]
    )
    assert hidden == 3072
    # 16 noisy + 16 condition latent channels, 2x2 patches.
    assert transformer["patch_embed.proj.weight"] == (3072, 32, 2, 2)
    assert transformer["patch_embed.text_proj.weight"] == (3072, REAL_PROMPT_SHAPE[2])
    assert transformer["proj_out.weight"] == (16 * 2 * 2, 3072)
    assert transformer["time_embedding.linear_1.weight"] == (512, 3072)
    # Learned positional embeddings pin 226 text tokens + 13 x 30 x 45 video patches.
    assert transformer["patch_embed.pos_embedding"] == (1, 226 + 13 * 30 * 45, 3072)
    blocks = {key.split(".")[1] for key in transformer if key.startswith("transformer_blocks.")}
    assert len(blocks) == 42
    params = sum(
        int(np.prod(shape))
        for key, shape in transformer.items()
        if key != "patch_embed.pos_embedding"
    )
    assert 5.0e9 < params < 5.9e9  # a "5B" model
    assert vae["encoder.conv_out.conv.weight"][0] == 2 * 16  # mean and log-variance of 16 channels
    assert vae["decoder.conv_in.conv.weight"][1] == 16


def test_the_base_projects_subset_on_the_real_size_transformer() -> None:
    """What a release holding only the base project's fine-tuned projections (CogvideX-
    Interpolation's finetune.py), saved from a DDP-wrapped model, replaces at real size."""
    transformer, _ = real_size_state_shapes()
    assert len(transformer) == 1025
    subset = {k: v for k, v in transformer.items() if _trained_by_the_base_project(k)}
    match = match_subset(transformer, {f"module.{k}": v for k, v in subset.items()})
    # 42 blocks x (to_q, to_v, ff.net.0.proj, ff.net.2) x (weight, bias) + proj_out's two
    assert (match.replaced, match.total, match.prefix) == (42 * 4 * 2 + 2, 1025, "module.")
    assert match.groups_replaced() == [
        "transformer_blocks.*.attn1.to_q",
        "transformer_blocks.*.attn1.to_v",
        "transformer_blocks.*.ff.net.0.proj",
        "transformer_blocks.*.ff.net.2",
        "proj_out",
    ]
    assert match.summary() == (
        "338 of 1,025 tensors replaced (transformer_blocks.*.attn1.to_q, "
        "transformer_blocks.*.attn1.to_v, transformer_blocks.*.ff.net.0.proj, "
        "transformer_blocks.*.ff.net.2, proj_out); the other 687 keep the base model's weights "
        "(key prefix 'module.' stripped)"
    )
    wrong = dict(subset, **{"proj_out.weight": (64, 4096)})
    with pytest.raises(
        WeightsMismatch, match=r"proj_out.weight: \(64, 4096\) instead of \(64, 3072\)"
    ):
        match_subset(transformer, wrong)


def test_tiny_checkpoint_keys_match_what_the_loader_expects(tmp_path: Path) -> None:
    """The tiny release holds the diffusers transformer's keys, all of them (a full release)."""
    from diffusers import CogVideoXTransformer3DModel

    root = make_tiny_checkpoint(tmp_path, seed=1)
    transformer = CogVideoXTransformer3DModel.from_pretrained(
        root / "cogvideox-interpolation" / "transformer"
    )
    saved = load_file(root / "videoscene" / "model.safetensors")
    assert set(saved) == set(transformer.state_dict())


def _closed_form_alphas_cumprod() -> np.ndarray:
    """CogVideoX-5B schedule: scaled_linear betas 0.00085-0.012, 1000 steps, zero terminal SNR."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    abar = np.cumprod(1.0 - betas)
    root = np.sqrt(abar)
    first, last = root[0], root[-1]
    root = (root - last) * first / (first - last)  # rescale so the last step has zero SNR
    return root**2


def test_scheduler_matches_the_closed_form_schedule(tiny_checkpoint: Path) -> None:
    from diffusers import CogVideoXDDIMScheduler

    scheduler = CogVideoXDDIMScheduler.from_pretrained(
        tiny_checkpoint / "cogvideox-interpolation" / "scheduler"
    )
    expected = _closed_form_alphas_cumprod()
    np.testing.assert_allclose(
        scheduler.alphas_cumprod.double().numpy(), expected, rtol=1e-4, atol=1e-6
    )
    assert 0.25 < expected[459] < 0.35 and 0.13 < expected[549] < 0.23

    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 3, 4, 5, 5, generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    for step in (459, 549):
        t = torch.tensor([step])
        abar = float(expected[step])
        x_t = scheduler.add_noise(x0, eps, t)
        torch.testing.assert_close(
            x_t, abar**0.5 * x0 + (1 - abar) ** 0.5 * eps, rtol=1e-4, atol=1e-5
        )
        velocity = abar**0.5 * eps - (1 - abar) ** 0.5 * x0  # what a perfect v-model predicts
        torch.testing.assert_close(
            scheduler.get_velocity(velocity, x_t, t), x0, rtol=1e-4, atol=1e-4
        )

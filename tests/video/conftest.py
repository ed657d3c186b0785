"""Tiny random CogVideoX models saved in the real checkpoint layout, loaded by the real loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY_FRAMES = 9  # 3 latent frames
TINY_SIZE = (64, 96)  # (height, width): latent 8 x 12


def make_tiny_checkpoint(root: Path, seed: int = 0) -> Path:
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXTransformer3DModel,
    )
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    base = root / "cogvideox-interpolation"
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=32,
        out_channels=16,
        time_embed_dim=32,
        text_embed_dim=32,
        num_layers=2,
        sample_width=TINY_SIZE[1] // 8,
        sample_height=TINY_SIZE[0] // 8,
        sample_frames=TINY_FRAMES,
        patch_size=2,
        max_text_seq_length=16,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    )
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 8, 8),
        latent_channels=16,
        layers_per_block=1,
        norm_num_groups=4,
        sample_height=TINY_SIZE[0],
        sample_width=TINY_SIZE[1],
        scaling_factor=0.7,
    )
    scheduler = CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        set_alpha_to_one=True,
        clip_sample=False,
        snr_shift_scale=1.0,  # CogVideoX-5B's value (the 2B model uses 3.0)
    )
    transformer.save_pretrained(base / "transformer")
    vae.save_pretrained(base / "vae")
    scheduler.save_pretrained(base / "scheduler")
    # The "distilled" weights: a perturbed copy with the same keys, as VideoScene's file is.
    distilled = {k: v + 0.01 * torch.randn_like(v) for k, v in transformer.state_dict().items()}
    (root / "videoscene").mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in distilled.items()}, root / "videoscene" / "model.safetensors"
    )
    torch.save(torch.randn(1, 16, 32), root / "videoscene" / "prompt_embeds.pt")
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("checkpoints"))

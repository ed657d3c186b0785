"""Finding and validating the video model's weights on disk.

Layout under the checkpoints folder (see checkpoints/README.md):
    cogvideox-interpolation/{vae,transformer,scheduler}/   the base model, diffusers layout
    videoscene/model.safetensors                           VideoScene's distilled transformer
    videoscene/prompt_embeds.pt (or .safetensors)          T5 prompt embeddings [1, 226, 4096]

The seed loads model.safetensors with strict=False, which silently keeps base weights wherever
a key is misspelt. Here every missing, unexpected or wrong-shaped key is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from videoscene_protocol.errors import ErrorCode, VideoSceneError

BASE_DIR = "cogvideox-interpolation"
VIDEOSCENE_DIR = "videoscene"
DISTILLED_WEIGHTS = f"{VIDEOSCENE_DIR}/model.safetensors"
PROMPT_EMBEDS = (
    f"{VIDEOSCENE_DIR}/prompt_embeds.pt",
    f"{VIDEOSCENE_DIR}/prompt_embeds.safetensors",
)

BASE_REPO = "feizhengcong/CogvideoX-Interpolation"
VIDEOSCENE_REPO = "hanyang-21/VideoScene"
DOWNLOAD_HINT = "Run `videoscene-backend download --what videoscene` (see checkpoints/README.md)."

# Every file the refiner needs, with where it comes from.
REQUIRED_FILES: dict[str, str] = {
    f"{BASE_DIR}/vae/config.json": f"{BASE_REPO} (vae/)",
    f"{BASE_DIR}/transformer/config.json": f"{BASE_REPO} (transformer/)",
    f"{BASE_DIR}/scheduler/scheduler_config.json": f"{BASE_REPO} (scheduler/)",
    DISTILLED_WEIGHTS: f"{VIDEOSCENE_REPO} (model.safetensors)",
}

# Real-size configs of the CogVideoX-5b-I2V derivative the seed uses (CogvideoX-Interpolation).
REAL_TRANSFORMER_CONFIG: dict = {
    "num_attention_heads": 48,
    "attention_head_dim": 64,
    "in_channels": 32,
    "out_channels": 16,
    "time_embed_dim": 512,
    "text_embed_dim": 4096,
    "num_layers": 42,
    "sample_width": 90,
    "sample_height": 60,
    "sample_frames": 49,
    "patch_size": 2,
    "max_text_seq_length": 226,
    "use_rotary_positional_embeddings": True,
    "use_learned_positional_embeddings": True,
}
REAL_VAE_CONFIG: dict = {
    "block_out_channels": (128, 256, 256, 512),
    "latent_channels": 16,
    "layers_per_block": 3,
    "norm_num_groups": 32,
    "temporal_compression_ratio": 4,
    "sample_height": 480,
    "sample_width": 720,
    "scaling_factor": 0.7,
}
REAL_PROMPT_SHAPE = (1, 226, 4096)


@dataclass
class VideoCheckpoint:
    root: Path
    base_dir: Path
    distilled_weights: Path
    prompt_embeds: Path


def missing_files(root: Path) -> list[str]:
    """Relative paths of required files that are absent, each followed by its source."""
    missing = [
        f"{rel} (from {source})"
        for rel, source in REQUIRED_FILES.items()
        if not (root / rel).is_file()
    ]
    if not any((root / rel).is_file() for rel in PROMPT_EMBEDS):
        missing.append(f"{PROMPT_EMBEDS[0]} (from {VIDEOSCENE_REPO} (prompt_embeds.pt))")
    return missing


def find_checkpoint(root: Path) -> VideoCheckpoint:
    """Return the checkpoint's paths or raise WEIGHTS_MISSING naming every absent file."""
    missing = missing_files(root)
    if missing:
        raise VideoSceneError(
            ErrorCode.WEIGHTS_MISSING,
            f"Video model weights are missing under {root}: " + "; ".join(missing),
            DOWNLOAD_HINT,
        )
    prompt = next(root / rel for rel in PROMPT_EMBEDS if (root / rel).is_file())
    return VideoCheckpoint(root, root / BASE_DIR, root / DISTILLED_WEIGHTS, prompt)


def load_prompt_embeds(path: Path, text_seq_len: int, text_dim: int) -> torch.Tensor:
    """Load the precomputed T5 embeddings [1, seq, dim] without unpickling arbitrary objects."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if "prompt_embeds" not in tensors:
                raise ValueError(f"no 'prompt_embeds' tensor (found {sorted(tensors)})")
            embeds = tensors["prompt_embeds"]
        else:
            embeds = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with objects, wrong container
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"Cannot read prompt embeddings {path}: {exc}",
            "Download prompt_embeds.pt again. " + DOWNLOAD_HINT,
        ) from exc
    if not isinstance(embeds, torch.Tensor):
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"{path} holds a {type(embeds).__name__}, not a tensor.",
            DOWNLOAD_HINT,
        )
    if embeds.ndim == 2:
        embeds = embeds.unsqueeze(0)
    expected = (1, text_seq_len, text_dim)
    if tuple(embeds.shape) != expected:
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"Prompt embeddings in {path} have shape {tuple(embeds.shape)}, expected {expected}.",
            "They must be the T5-XXL output matching the transformer's text length and width. "
            + DOWNLOAD_HINT,
        )
    return embeds


def state_dict_problems(
    expected: dict[str, torch.Size], found: dict[str, torch.Size], show: int = 5
) -> list[str]:
    """Human-readable list of key and shape disagreements (empty when they match exactly)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:show])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:show])})")
    if wrong:
        details = ", ".join(
            f"{k}: {tuple(found[k])} instead of {tuple(expected[k])}" for k in wrong[:show]
        )
        problems.append(f"{len(wrong)} keys with wrong shapes ({details})")
    return problems


def load_distilled_weights(transformer: torch.nn.Module, path: Path) -> None:
    """Load VideoScene's transformer weights strictly; report every disagreement by name."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: torch.Size(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"Cannot read {path}: {exc}",
            "The file is not a valid safetensors file. " + DOWNLOAD_HINT,
        ) from exc
    expected = {key: value.shape for key, value in transformer.state_dict().items()}
    problems = state_dict_problems(expected, shapes)
    if problems:
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"{path} does not fit the transformer in {path.parent.parent / BASE_DIR}: "
            + "; ".join(problems),
            "Use VideoScene's model.safetensors with the CogvideoX-Interpolation base it was "
            "distilled from. " + DOWNLOAD_HINT,
        )
    from safetensors.torch import load_file

    transformer.load_state_dict(load_file(str(path)), strict=True)


def real_size_state_shapes() -> tuple[dict[str, torch.Size], dict[str, torch.Size]]:
    """Key -> shape of the real-size transformer and VAE, built on the meta device (no memory)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    with torch.device("meta"):
        transformer = CogVideoXTransformer3DModel(**REAL_TRANSFORMER_CONFIG)
        vae = AutoencoderKLCogVideoX(**REAL_VAE_CONFIG)
    return (
        {k: v.shape for k, v in transformer.state_dict().items()},
        {k: v.shape for k, v in vae.state_dict().items()},
    )

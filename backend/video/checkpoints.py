"""Finding and loading the video model's weights on disk.

Layout under the checkpoints folder (backend/weights/sources.py, checkpoints/README.md):
    cogvideox-interpolation/{vae,transformer,scheduler}/   the base model, diffusers layout
    videoscene/model.safetensors                           VideoScene's distilled transformer
    videoscene/prompt_embeds.pt (or .safetensors)          T5 prompt embeddings [1, 226, 4096]
    videoscene/negative_prompt_embeds.pt (optional)        T5 encoding of "" (multi-step CFG)

model.safetensors goes over the base transformer as the seed loads it (strict=False), but
loudly: a `module.`/`transformer.` prefix is stripped, a subset of the keys is accepted and the
load report says exactly which groups were replaced; unexpected keys, wrong shapes and a file
without a single transformer key are refused by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from ..weights.sources import (
    BASE_DIR,
    DISTILLED_WEIGHTS,
    NEGATIVE_PROMPT_EMBEDS,
    PROMPT_EMBEDS,
    source_of,
)
from ..weights.state_dict import (
    SubsetMatch,
    WeightsMismatch,
    match_subset,
    non_float_keys,
    read_safetensors_header,
)

log = logging.getLogger("videoscene.backend")

DOWNLOAD_HINT = (
    "Run `videoscene-backend download --what videoscene` (it fetches the base model and says "
    "where to get VideoScene's own files by hand), then `videoscene-backend check`; see "
    "checkpoints/README.md."
)

# Every file the refiner needs (the prompt embeddings in either form are checked separately).
REQUIRED_FILES: tuple[str, ...] = (
    f"{BASE_DIR}/vae/config.json",
    f"{BASE_DIR}/transformer/config.json",
    f"{BASE_DIR}/scheduler/scheduler_config.json",
    DISTILLED_WEIGHTS,
)

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
# What the base project fine-tunes (CogvideX-Interpolation's finetune.py): parameters whose
# names contain one of these. A VideoScene file holding only them is a plausible release.
BASE_TRAINED_MODULES = ("ff.net", "to_q", "to_v", "proj_out")


@dataclass
class VideoCheckpoint:
    root: Path
    base_dir: Path
    distilled_weights: Path
    prompt_embeds: Path
    negative_prompt_embeds: Path | None = None  # optional: the base sampler's CFG negative


def first_present(root: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((root / rel for rel in candidates if (root / rel).is_file()), None)


def missing_files(root: Path) -> list[str]:
    """Relative paths of required files that are absent, each followed by its source."""
    missing = [
        f"{rel} (from {source_of(rel)})" for rel in REQUIRED_FILES if not (root / rel).is_file()
    ]
    if first_present(root, PROMPT_EMBEDS) is None:
        missing.append(f"{PROMPT_EMBEDS[0]} (from {source_of(PROMPT_EMBEDS[0])})")
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
    return VideoCheckpoint(
        root,
        root / BASE_DIR,
        root / DISTILLED_WEIGHTS,
        first_present(root, PROMPT_EMBEDS),
        first_present(root, NEGATIVE_PROMPT_EMBEDS),
    )


def load_prompt_embeds(path: Path, text_seq_len: int, text_dim: int) -> torch.Tensor:
    """Load T5 embeddings [1, seq, dim] without unpickling arbitrary objects. A .safetensors
    file holds them as the tensor named like the file (prompt_embeds, negative_prompt_embeds)."""
    hint = f"Get {path.name} again ({source_of(_relative(path))}). {DOWNLOAD_HINT}"
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            if path.stem not in tensors:
                raise ValueError(f"no {path.stem!r} tensor (found {sorted(tensors)})")
            embeds = tensors[path.stem]
        else:
            embeds = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with objects, wrong container
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID, f"Cannot read prompt embeddings {path}: {exc}", hint
        ) from exc
    if not isinstance(embeds, torch.Tensor):
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"{path} holds a {type(embeds).__name__}, not a tensor.",
            hint,
        )
    if embeds.ndim == 2:
        embeds = embeds.unsqueeze(0)
    expected = (1, text_seq_len, text_dim)
    if tuple(embeds.shape) != expected:
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"Prompt embeddings in {path} have shape {tuple(embeds.shape)}, expected {expected}.",
            "They must be the T5-XXL output matching the transformer's text length and width. "
            + hint,
        )
    if not torch.isfinite(embeds).all():
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID, f"Prompt embeddings in {path} hold NaN or inf.", hint
        )
    return embeds


def _relative(path: Path) -> str:
    """`videoscene/<name>` for a file of the videoscene folder (how sources name it)."""
    return f"{path.parent.name}/{path.name}"


def state_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def match_distilled_weights(
    expected: dict[str, tuple[int, ...]], path: Path
) -> tuple[SubsetMatch, dict]:
    """Compare model.safetensors' header with the transformer's keys (no tensor is read).
    Returns (the match, the header). Raises WeightsMismatch saying what does not fit."""
    header = read_safetensors_header(path)
    bad_dtypes = non_float_keys(header)
    if bad_dtypes:
        raise WeightsMismatch(f"non-float tensors: {', '.join(bad_dtypes)}")
    return match_subset(expected, {key: entry.shape for key, entry in header.items()}), header


def load_distilled_weights(transformer: torch.nn.Module, path: Path) -> SubsetMatch:
    """Copy VideoScene's tensors over the base transformer's, one tensor at a time from the
    mapped file; return what was replaced (the load report)."""
    from safetensors import safe_open

    try:
        match, _ = match_distilled_weights(state_shapes(transformer), path)
    except WeightsMismatch as exc:
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"{path} does not fit the transformer in {path.parent.parent / BASE_DIR}: {exc}",
            "Use VideoScene's model.safetensors with the CogvideoX-Interpolation base it was "
            "distilled from. " + DOWNLOAD_HINT,
        ) from exc
    targets = transformer.state_dict(keep_vars=True)  # the parameters and buffers themselves
    with safe_open(str(path), framework="pt") as handle, torch.no_grad():
        for file_key, model_key in match.mapping.items():
            targets[model_key].copy_(handle.get_tensor(file_key))
    (log.info if match.complete else log.warning)("%s: %s", path.name, match.summary())
    return match


def real_size_models_on_meta():
    """The real-size transformer and VAE on the meta device (no memory)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    with torch.device("meta"):
        return (
            CogVideoXTransformer3DModel(**REAL_TRANSFORMER_CONFIG),
            AutoencoderKLCogVideoX(**REAL_VAE_CONFIG),
        )


def real_size_state_shapes() -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Key -> shape of the real-size transformer and VAE."""
    transformer, vae = real_size_models_on_meta()
    return state_shapes(transformer), state_shapes(vae)

"""The video model's rows of `videoscene-backend check`: every file the refiner reads, verified
without a GPU and without reading tensor data (configs parse, safetensors headers give key names,
shapes and dtypes; models are built on torch's meta device to know what to expect)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from videoscene_protocol.errors import VideoSceneError

from ..weights.report import INVALID, MISSING, OK, CheckRow
from ..weights.sources import (
    BASE_DIR,
    DISTILLED_WEIGHTS,
    NEGATIVE_PROMPT_EMBEDS,
    PROMPT_EMBEDS,
    source_of,
)
from ..weights.state_dict import (
    WeightsMismatch,
    dtype_names,
    exact_problems,
    read_sharded_header,
)
from .checkpoints import (
    REAL_TRANSFORMER_CONFIG,
    first_present,
    load_prompt_embeds,
    match_distilled_weights,
    state_shapes,
)

VIDEO_MODEL = "the video model (without it render jobs return the coarse frames)"
WEIGHTS_STEM = "diffusion_pytorch_model"


def _row(
    path: str, status: str, what: str, needed_for: str = VIDEO_MODEL, required: bool = True
) -> CheckRow:
    return CheckRow(path, status, what, needed_for, required, source_of(path))


def _read_config(root: Path, rel: str, classes: tuple[str, ...]) -> tuple[dict | None, str]:
    """(config or None, problem). The config must parse and name one of the expected classes."""
    path = root / rel
    if not path.is_file():
        return None, MISSING
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"not readable JSON: {exc}"
    if not isinstance(config, dict):
        return None, "not a JSON object"
    found = config.get("_class_name")
    if found is not None and found not in classes:
        return None, f"a {found} config, expected {' or '.join(classes)}"
    return config, ""


def _meta_model(model_class, config: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the model a config describes, built on the meta device."""
    with torch.device("meta"):
        return state_shapes(model_class.from_config(config))


def _config_row(
    root: Path, rel: str, classes: tuple[str, ...], describe
) -> tuple[dict | None, CheckRow]:
    class_name = classes[0]
    config, problem = _read_config(root, rel, classes)
    if problem == MISSING:
        return None, _row(rel, MISSING, f"{class_name} config")
    if config is None:
        return None, _row(rel, INVALID, problem)
    try:
        return config, _row(rel, OK, describe(config))
    except (KeyError, TypeError, ValueError) as exc:
        return None, _row(rel, INVALID, f"{class_name} config without a usable {exc}")


def _describe_transformer(config: dict) -> str:
    height, width = config["sample_height"] * 8, config["sample_width"] * 8
    return (
        f"transformer config: {config['num_layers']} layers, {config['num_attention_heads']} "
        f"heads x {config['attention_head_dim']}, {config['sample_frames']} frames at "
        f"{height}x{width}, text {config['max_text_seq_length']} x {config['text_embed_dim']}"
    )


def _describe_vae(config: dict) -> str:
    return (
        f"VAE config: {config['latent_channels']} latent channels, "
        f"scaling factor {config['scaling_factor']}"
    )


def _describe_scheduler(config: dict) -> str:
    prediction = config["prediction_type"]
    if prediction != "v_prediction":
        raise ValueError(f"prediction_type ({prediction!r}; VideoScene needs 'v_prediction')")
    return f"{config.get('_class_name', 'scheduler')} config: v-prediction"


def _base_weights_row(folder: str, root: Path, expected: dict | None, what: str) -> CheckRow:
    """The base model's weights in `folder` (single file or shards) against its config."""
    rel = f"{folder}/{WEIGHTS_STEM}.safetensors"
    directory = root / folder
    if not any(directory.glob(f"{WEIGHTS_STEM}*")):
        return _row(rel, MISSING, f"{what} weights")
    if not any(directory.glob(f"{WEIGHTS_STEM}*.safetensors*")):
        bins = sorted(path.name for path in directory.glob(f"{WEIGHTS_STEM}*"))
        return _row(
            f"{folder}/{bins[0]}",
            OK,
            f"{what} weights in torch pickle form ({', '.join(bins)}): diffusers loads them; "
            "keys are checked only when the model loads",
        )
    try:
        header, files = read_sharded_header(directory, WEIGHTS_STEM)
    except WeightsMismatch as exc:
        return _row(rel, INVALID, str(exc))
    shown = rel if len(files) == 1 else f"{folder}/{WEIGHTS_STEM}-*.safetensors"
    summary = f"{what} weights: {len(header):,} tensors ({dtype_names(header)})"
    if len(files) > 1:
        summary += f" in {len(files)} shards"
    if expected is None:
        return _row(shown, OK, summary + "; not compared (its config is unusable)")
    problems = exact_problems(expected, {key: entry.shape for key, entry in header.items()})
    if problems:
        return _row(shown, INVALID, f"does not match its config: {'; '.join(problems)}")
    return _row(shown, OK, summary + ", match the config")


def _distilled_row(root: Path, expected: dict[str, tuple[int, ...]], against: str) -> CheckRow:
    path = root / DISTILLED_WEIGHTS
    if not path.is_file():
        return _row(DISTILLED_WEIGHTS, MISSING, "VideoScene's distilled transformer")
    try:
        match, header = match_distilled_weights(expected, path)
    except WeightsMismatch as exc:
        return _row(DISTILLED_WEIGHTS, INVALID, f"does not fit {against}: {exc}")
    return _row(
        DISTILLED_WEIGHTS,
        OK,
        f"VideoScene distilled transformer ({dtype_names(header)}): {match.summary()}",
    )


def _embeds_row(
    root: Path, candidates: tuple[str, ...], text_shape: tuple[int, int], required: bool
) -> CheckRow:
    negative = candidates == NEGATIVE_PROMPT_EMBEDS
    needed_for = (
        "classifier-free guidance of mode 'multi_step' (without it that mode runs unguided)"
        if negative
        else VIDEO_MODEL
    )
    name = "T5 encoding of the empty prompt" if negative else "T5 prompt embeddings"
    path = first_present(root, candidates)
    if path is None:
        return _row(candidates[0], MISSING, name, needed_for, required)
    rel = f"{path.parent.name}/{path.name}"
    try:
        embeds = load_prompt_embeds(path, *text_shape)
    except VideoSceneError as error:
        return _row(rel, INVALID, error.message, needed_for, required)
    dtype = str(embeds.dtype).removeprefix("torch.")
    return _row(rel, OK, f"{name} {tuple(embeds.shape)} ({dtype})", needed_for, required)


def inspect_video_install(root: Path) -> list[CheckRow]:
    """One row per file the refiner reads, in the order it reads them."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    rows = []
    transformer_config, row = _config_row(
        root,
        f"{BASE_DIR}/transformer/config.json",
        ("CogVideoXTransformer3DModel",),
        _describe_transformer,
    )
    rows.append(row)
    vae_config, row = _config_row(
        root, f"{BASE_DIR}/vae/config.json", ("AutoencoderKLCogVideoX",), _describe_vae
    )
    rows.append(row)
    rows.append(
        _config_row(
            root,
            f"{BASE_DIR}/scheduler/scheduler_config.json",
            # The refiner builds CogVideoX's DDIM scheduler from either config.
            ("CogVideoXDDIMScheduler", "CogVideoXDPMScheduler"),
            _describe_scheduler,
        )[1]
    )
    expected_transformer = expected_vae = None
    try:
        if transformer_config is not None:
            expected_transformer = _meta_model(CogVideoXTransformer3DModel, transformer_config)
    except Exception as exc:  # values diffusers cannot build a model from
        rows[0] = _row(rows[0].path, INVALID, f"diffusers cannot build the transformer: {exc}")
    try:
        if vae_config is not None:
            expected_vae = _meta_model(AutoencoderKLCogVideoX, vae_config)
    except Exception as exc:
        rows[1] = _row(rows[1].path, INVALID, f"diffusers cannot build the VAE: {exc}")
    rows.append(
        _base_weights_row(f"{BASE_DIR}/transformer", root, expected_transformer, "base transformer")
    )
    rows.append(_base_weights_row(f"{BASE_DIR}/vae", root, expected_vae, "VAE"))

    if expected_transformer is not None:
        against = "the base transformer's config"
        text_shape = (
            transformer_config["max_text_seq_length"],
            transformer_config["text_embed_dim"],
        )
    else:  # no usable config: compare with the real-size model the release is made for
        with torch.device("meta"):
            expected_transformer = state_shapes(
                CogVideoXTransformer3DModel(**REAL_TRANSFORMER_CONFIG)
            )
        against = "the real-size CogvideoX-Interpolation transformer (the base config is unusable)"
        text_shape = (
            REAL_TRANSFORMER_CONFIG["max_text_seq_length"],
            REAL_TRANSFORMER_CONFIG["text_embed_dim"],
        )
    rows.append(_distilled_row(root, expected_transformer, against))
    rows.append(_embeds_row(root, PROMPT_EMBEDS, text_shape, required=True))
    rows.append(_embeds_row(root, NEGATIVE_PROMPT_EMBEDS, text_shape, required=False))
    return rows

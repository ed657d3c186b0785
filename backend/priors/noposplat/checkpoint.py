"""Where the NoPoSplat checkpoint is looked for, how it is read, and how `check` reports it."""

from __future__ import annotations

import os
from pathlib import Path

from videoscene_protocol.errors import ErrorCode, VideoSceneError

from ...weights.lightning import LightningCheckpoint, read_lightning_checkpoint
from ...weights.report import INVALID, MISSING, OK, CheckRow
from ...weights.sources import NOPOSPLAT_CHECKPOINT, NOPOSPLAT_FILE, SOURCES
from ...weights.state_dict import exact_problems

SOURCE = SOURCES["noposplat"]
ENV_OVERRIDE = "VIDEOSCENE_NOPOSPLAT_CKPT"
HINT = (
    f"Download {NOPOSPLAT_FILE} again from {SOURCE.repo} on {SOURCE.host} "
    "(`videoscene-backend download --what noposplat`)."
)


def default_checkpoint_path(checkpoints_dir: Path) -> Path:
    return Path(checkpoints_dir) / NOPOSPLAT_CHECKPOINT


def find_checkpoint(checkpoints_dir: Path) -> Path | None:
    override = os.environ.get(ENV_OVERRIDE)
    candidates = [Path(override)] if override else []
    candidates.append(default_checkpoint_path(checkpoints_dir))
    return next((path for path in candidates if path.is_file()), None)


def missing_checkpoint_error(checkpoints_dir: Path) -> VideoSceneError:
    return VideoSceneError(
        ErrorCode.WEIGHTS_MISSING,
        f"The NoPoSplat checkpoint {default_checkpoint_path(checkpoints_dir)} is missing "
        f"(from {SOURCE.describe()}).",
        "Run `videoscene-backend download --what noposplat`, or use prior 'auto' or 'stereo'.",
    )


def _meta_network(config):
    import torch

    from .network import REAL_CONFIG, NoPoSplatNet

    with torch.device("meta"):
        return NoPoSplatNet(config or REAL_CONFIG)


def _network_weights(path: Path, network) -> tuple[dict, LightningCheckpoint]:
    """The checkpoint's "encoder." tensors, matched strictly against the (meta) network's keys
    (training-only entries beside them, such as loss networks, are ignored). Raises ValueError."""
    from .network import CHECKPOINT_PREFIX

    checkpoint = read_lightning_checkpoint(path, mmap=True)
    weights = {
        key[len(CHECKPOINT_PREFIX) :]: value
        for key, value in checkpoint.state_dict.items()
        if key.startswith(CHECKPOINT_PREFIX)
    }
    expected = {key: tuple(value.shape) for key, value in network.state_dict().items()}
    problems = exact_problems(expected, {key: tuple(value.shape) for key, value in weights.items()})
    if problems:
        raise ValueError(f"{path} does not match the NoPoSplat network: " + "; ".join(problems))
    return weights, checkpoint


def load_network(path: Path, config=None, device: str = "cpu"):
    """The network with the checkpoint's weights. The Lightning checkpoint is read without
    running its pickle (backend/weights/lightning.py) and mapped, not copied, into memory."""
    network = _meta_network(config)
    try:
        weights, _ = _network_weights(path, network)
    except ValueError as exc:
        raise VideoSceneError(ErrorCode.WEIGHTS_INVALID, str(exc), HINT) from exc
    # assign: the meta network takes the (mapped) tensors themselves, no second copy
    network.load_state_dict(weights, strict=True, assign=True)
    return network.eval().requires_grad_(False).to(device)


def inspect_checkpoint(checkpoints_dir: Path, config=None) -> CheckRow:
    """The `check` row: present? readable without running code? keys and shapes right?"""
    path = find_checkpoint(checkpoints_dir)
    shown = NOPOSPLAT_CHECKPOINT if path is None else _shown_path(path, checkpoints_dir)
    row = {
        "path": shown,
        "needed_for": "the NoPoSplat prior (prior 'auto' falls back to the stereo prior)",
        "required": False,
        "source": SOURCE.describe(),
    }
    if path is None:
        return CheckRow(status=MISSING, what="NoPoSplat Lightning checkpoint", **row)
    try:
        weights, checkpoint = _network_weights(path, _meta_network(config))
    except ValueError as exc:
        return CheckRow(status=INVALID, what=str(exc), **row)
    others = len(checkpoint.state_dict) - len(weights)
    what = f"NoPoSplat network: {len(weights):,} tensors under 'encoder.'"
    if others:
        what += f", {others:,} training-only tensors ignored"
    if checkpoint.stand_ins:
        what += f"; inert stand-ins for {', '.join(checkpoint.stand_ins)}"
    return CheckRow(status=OK, what=what, **row)


def _shown_path(path: Path, checkpoints_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(checkpoints_dir).resolve()))
    except ValueError:  # given by the environment variable, outside the folder
        return f"{path} (${ENV_OVERRIDE})"

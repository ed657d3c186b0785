"""Where the NoPoSplat checkpoint is looked for, and the error when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

from videoscene_protocol.errors import ErrorCode, VideoSceneError

CHECKPOINT_REPO = "botaoye/NoPoSplat"
CHECKPOINT_DIR = "noposplat"  # under the checkpoints folder; `download` writes it there
CHECKPOINT_NAME = "mixRe10kDl3dv_512x512.ckpt"
SOURCE = f"the NoPoSplat release on the Hugging Face hub (repository {CHECKPOINT_REPO})"


def default_checkpoint_path(checkpoints_dir: Path) -> Path:
    return Path(checkpoints_dir) / CHECKPOINT_DIR / CHECKPOINT_NAME


def find_checkpoint(checkpoints_dir: Path) -> Path | None:
    override = os.environ.get("VIDEOSCENE_NOPOSPLAT_CKPT")
    candidates = [Path(override)] if override else []
    candidates.append(default_checkpoint_path(checkpoints_dir))
    return next((path for path in candidates if path.is_file()), None)


def missing_checkpoint_error(checkpoints_dir: Path) -> VideoSceneError:
    return VideoSceneError(
        ErrorCode.WEIGHTS_MISSING,
        f"The NoPoSplat checkpoint {default_checkpoint_path(checkpoints_dir)} is missing (from {SOURCE}).",
        "Run `videoscene-backend download --what noposplat`, or use prior 'auto' or 'stereo'.",
    )


def load_network(path: Path, config=None, device: str = "cpu"):
    """The network with the checkpoint's weights, loaded strictly: the "encoder." keys of the
    Lightning state_dict (training-only parts beside them, such as loss networks, are ignored)."""
    import torch

    from ...video.checkpoints import state_dict_problems
    from .network import CHECKPOINT_PREFIX, REAL_CONFIG, NoPoSplatNet

    config = config or REAL_CONFIG
    hint = f"Download {CHECKPOINT_NAME} again from {SOURCE} (`videoscene-backend download --what noposplat`)."
    try:
        # weights_only: a checkpoint is never allowed to run code; mmap: the 2.3 GB file is not
        # copied into memory before the network takes its tensors.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated file, not a torch file, or pickled Python objects
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"Cannot read {path} as a weights-only torch checkpoint: {exc}",
            hint,
        ) from exc
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise VideoSceneError(ErrorCode.WEIGHTS_INVALID, f"{path} holds no state_dict.", hint)
    weights = {
        key[len(CHECKPOINT_PREFIX) :]: value
        for key, value in state.items()
        if key.startswith(CHECKPOINT_PREFIX)
    }
    with torch.device("meta"):
        network = NoPoSplatNet(config)
    expected = {key: value.shape for key, value in network.state_dict().items()}
    problems = state_dict_problems(expected, {key: value.shape for key, value in weights.items()})
    if problems:
        raise VideoSceneError(
            ErrorCode.WEIGHTS_INVALID,
            f"{path} does not match the NoPoSplat network: " + "; ".join(problems),
            hint,
        )
    # assign: the meta network takes the (mapped) tensors themselves, no second copy
    network.load_state_dict(weights, strict=True, assign=True)
    return network.eval().requires_grad_(False).to(device)

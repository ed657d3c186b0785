"""Where the NoPoSplat checkpoint is looked for, and the error when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

from videoscene_protocol.errors import ErrorCode, VideoSceneError

CHECKPOINT_NAME = "mixRe10kDl3dv_512x512.ckpt"
SOURCE = "the NoPoSplat release on the Hugging Face hub (repository botaoye/NoPoSplat)"


def find_checkpoint(checkpoints_dir: Path) -> Path | None:
    override = os.environ.get("VIDEOSCENE_NOPOSPLAT_CKPT")
    candidates = [Path(override)] if override else []
    candidates.append(Path(checkpoints_dir) / "noposplat" / CHECKPOINT_NAME)
    return next((path for path in candidates if path.is_file()), None)


def missing_checkpoint_error(checkpoints_dir: Path) -> VideoSceneError:
    return VideoSceneError(
        ErrorCode.WEIGHTS_MISSING,
        f"The NoPoSplat checkpoint {Path(checkpoints_dir) / 'noposplat' / CHECKPOINT_NAME} is missing (from {SOURCE}).",
        "Run `videoscene-backend download --what noposplat`, or use prior 'auto' or 'stereo'.",
    )

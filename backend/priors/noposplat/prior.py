"""The NoPoSplat prior. Its network is not implemented in this release: a clear error, no fake."""

from __future__ import annotations

from pathlib import Path

from videoscene_protocol.errors import ErrorCode, VideoSceneError


class NoPoSplatPrior:
    name = "noposplat"

    def __init__(self, checkpoint_path: Path, models=None) -> None:
        self.checkpoint_path = checkpoint_path

    def build(self, images, fov_deg, progress, check_cancelled):
        raise VideoSceneError(
            ErrorCode.NOT_IMPLEMENTED,
            "The NoPoSplat prior is not implemented in this backend version yet.",
            "Use prior 'auto' or 'stereo' (the embedded two-view stereo prior).",
        )

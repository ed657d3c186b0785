"""What every Gaussian prior provides: two photos in, a GaussianScene with 2 reference cameras out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ..scene.gaussians import GaussianScene

ProgressFn = Callable[[str, float, str], None]  # (stage, fraction, message)
CancelCheck = Callable[[], None]  # raises when the job was cancelled


class GaussianPrior(Protocol):
    name: str

    def build(
        self,
        images: list[np.ndarray],  # two RGB uint8 (H, W, 3), sizes may differ
        fov_deg: float | Sequence[float | None] | None,  # horizontal FOV: both, or per photo
        progress: ProgressFn,
        check_cancelled: CancelCheck,
    ) -> GaussianScene:
        """Return the scene in reference camera 0's OpenCV frame with both reference cameras.

        Raise videoscene_protocol.errors.VideoSceneError (PRIOR_FAILED, BAD_IMAGE, ...) with a
        message naming the cause; never return a silently wrong scene."""
        ...

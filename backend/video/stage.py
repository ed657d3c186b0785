"""The refine stage of render_video (filled in by the video-model issue)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..pipeline.contract import JobContext


def refine_stage(
    ctx: JobContext,
    coarse_frames: np.ndarray,
    reference_photos: list[np.ndarray],
    params: dict[str, Any],
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Return (refined frames uint8 (N, H, W, 3) or None, metadata). None means the coarse frames
    are all the job returns, and metadata["refine_message"] says why in plain words."""
    return None, {
        "refined": False,
        "refine_message": "The video model is not implemented in this backend version yet.",
    }

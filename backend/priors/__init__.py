"""Prior selection: `auto` = NoPoSplat when its checkpoint is present, else the embedded stereo prior."""

from __future__ import annotations

from pathlib import Path

from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import BUILD_SCENE

from .base import GaussianPrior

PRIOR_NAMES = BUILD_SCENE["prior"].values


def select_prior(
    name: str, checkpoints_dir: Path, models=None, pose_refine_steps: int | None = None
) -> tuple[GaussianPrior, str]:
    """Return (prior, reason). The reason goes into the result metadata verbatim. `models` is
    the service's ModelCache, so a learned prior's network stays loaded between jobs;
    pose_refine_steps (None = the prior's default) applies to NoPoSplat's second camera."""
    if name not in PRIOR_NAMES:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"Unknown prior {name!r}.",
            f"Use one of: {', '.join(PRIOR_NAMES)}.",
        )
    if name in ("auto", "noposplat"):
        from .noposplat.checkpoint import find_checkpoint, missing_checkpoint_error

        checkpoint = find_checkpoint(checkpoints_dir)
        if checkpoint is not None:
            from .noposplat.prior import NoPoSplatPrior

            return NoPoSplatPrior(
                checkpoint, models, pose_refine_steps=pose_refine_steps
            ), f"NoPoSplat checkpoint found at {checkpoint}"
        if name == "noposplat":
            raise missing_checkpoint_error(checkpoints_dir)
    return _stereo(
        "requested"
        if name == "stereo"
        else "no NoPoSplat checkpoint found; using the embedded stereo prior"
    )


def _stereo(reason: str) -> tuple[GaussianPrior, str]:
    from .stereo import StereoPrior

    return StereoPrior(), reason

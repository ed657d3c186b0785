"""Prior selection: `auto` = NoPoSplat when its checkpoint is present, else the embedded stereo prior."""

from __future__ import annotations

from pathlib import Path

from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .base import GaussianPrior

PRIOR_NAMES = ("auto", "stereo", "noposplat")


def select_prior(name: str, checkpoints_dir: Path) -> tuple[GaussianPrior, str]:
    """Return (prior, reason). The reason goes into the result metadata verbatim."""
    if name not in PRIOR_NAMES:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"Unknown prior {name!r}.",
            f"Use one of: {', '.join(PRIOR_NAMES)}.",
        )
    if name in ("auto", "noposplat"):
        from .noposplat import NETWORK_AVAILABLE
        from .noposplat.checkpoint import find_checkpoint
        from .noposplat.prior import NoPoSplatPrior

        checkpoint = find_checkpoint(checkpoints_dir)
        if checkpoint is not None and (NETWORK_AVAILABLE or name == "noposplat"):
            return NoPoSplatPrior(checkpoint), f"NoPoSplat checkpoint found at {checkpoint}"
        if checkpoint is not None:
            return _stereo(
                f"a NoPoSplat checkpoint is at {checkpoint}, but this backend version cannot run NoPoSplat yet; using the embedded stereo prior"
            )
        if name == "noposplat":
            from .noposplat.checkpoint import missing_checkpoint_error

            raise missing_checkpoint_error(checkpoints_dir)
    return _stereo(
        "requested"
        if name == "stereo"
        else "no NoPoSplat checkpoint found; using the embedded stereo prior"
    )


def _stereo(reason: str) -> tuple[GaussianPrior, str]:
    from .stereo import StereoPrior

    return StereoPrior(), reason

"""The stereo prior's one error constructor (every refusal names its cause and a remedy, and the
learned prior made for the pairs this one cannot build)."""

from __future__ import annotations

from videoscene_protocol.errors import ErrorCode, VideoSceneError

LEARNED_PRIOR_HINT = (
    "The learned prior NoPoSplat is made for such pairs (little overlap, turning cameras): "
    "`videoscene-backend download --what noposplat` installs it, and prior auto then uses it."
)


def prior_failed(message: str, hint: str) -> VideoSceneError:
    return VideoSceneError(ErrorCode.PRIOR_FAILED, message, f"{hint} {LEARNED_PRIOR_HINT}")

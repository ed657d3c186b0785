"""The stereo prior's one error constructor (every refusal names its cause and a remedy)."""

from __future__ import annotations

from videoscene_protocol.errors import ErrorCode, VideoSceneError


def prior_failed(message: str, hint: str) -> VideoSceneError:
    return VideoSceneError(ErrorCode.PRIOR_FAILED, message, hint)

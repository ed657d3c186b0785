# Copied from videoscene_backend.priors.stereo.errors at 4c100db (issue #35's in-run baseline for
# bench/real_photos.py; imports made absolute). Not used by the backend.
"""The stereo prior's one error constructor (every refusal names its cause and a remedy)."""

from __future__ import annotations

from videoscene_protocol.errors import ErrorCode, VideoSceneError


def prior_failed(message: str, hint: str) -> VideoSceneError:
    return VideoSceneError(ErrorCode.PRIOR_FAILED, message, hint)

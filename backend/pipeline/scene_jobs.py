"""Handlers for build_scene, load_scene and render_video (filled in by the scene issue)."""

from __future__ import annotations

from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .contract import JobContext, JobOutput, JobRequest


def _not_implemented(kind: str) -> VideoSceneError:
    return VideoSceneError(
        ErrorCode.NOT_IMPLEMENTED,
        f"The {kind} job is not implemented in this backend version yet.",
        "Update the backend.",
    )


def build_scene(ctx: JobContext, request: JobRequest) -> JobOutput:
    raise _not_implemented("build_scene")


def load_scene(ctx: JobContext, request: JobRequest) -> JobOutput:
    raise _not_implemented("load_scene")


def render_video(ctx: JobContext, request: JobRequest) -> JobOutput:
    raise _not_implemented("render_video")

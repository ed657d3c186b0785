"""Any unexpected exception, shown to the user as a VideoScene error with something to do."""

from __future__ import annotations

import traceback

import bpy

from ._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError


def unexpected_error(exc: BaseException, action: str) -> VideoSceneError:
    """An `internal` error naming what failed, with a hint; the traceback goes to the console."""
    traceback.print_exception(exc)
    return VideoSceneError(
        ErrorCode.INTERNAL,
        f"{action} failed: {type(exc).__name__}: {exc}",
        "This is a bug in the VideoScene add-on: please report it with the console output "
        f"and your Blender version ({bpy.app.version_string}).",
    )

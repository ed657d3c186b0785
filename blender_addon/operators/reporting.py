"""How operators report failures: every failure is a VideoScene error in the panel and the
report area, with a hint, never a raw traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable

import bpy

from .._vendor.videoscene_protocol.errors import VideoSceneError
from ..bug_report import unexpected_error
from ..client_glue import SESSION

Execute = Callable[[bpy.types.Operator, bpy.types.Context], set[str]]


def show_error(
    operator: bpy.types.Operator, context: bpy.types.Context, error: VideoSceneError
) -> set[str]:
    state = context.window_manager.videoscene_state
    state.error_message, state.error_hint = error.message, error.hint
    state.status = f"Error ({error.code.value})"
    state.busy = bool(SESSION.jobs or SESSION.queue)
    operator.report({"ERROR"}, str(error))
    return {"CANCELLED"}


def reports_errors(execute: Execute) -> Execute:
    """Wrap an operator's execute: VideoScene errors are shown as they are, anything else as an
    `internal` error naming the operator."""

    @functools.wraps(execute)
    def wrapper(operator: bpy.types.Operator, context: bpy.types.Context) -> set[str]:
        try:
            return execute(operator, context)
        except VideoSceneError as error:
            return show_error(operator, context, error)
        except Exception as exc:
            return show_error(operator, context, unexpected_error(exc, operator.bl_label))

    return wrapper

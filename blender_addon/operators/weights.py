"""Preferences > Check Weights: the backend verifies its installed weights on a worker thread;
the report is kept in preferences.WEIGHTS_REPORT, which the preferences draw."""

from __future__ import annotations

import bpy

from .. import client_glue, preferences
from .._vendor.videoscene_protocol.client import BackendClient
from .._vendor.videoscene_protocol.errors import VideoSceneError
from ..preferences import CHECK_WEIGHTS_OPERATOR, WEIGHTS_REPORT


def fetch_weights_report(address: str, keys: dict, connect_timeout_s: float) -> dict:
    """Runs in a worker thread with a client of its own (a ZeroMQ socket belongs to one thread):
    the backend's weights report, or {"error", "hint"}."""
    client = BackendClient(address, **keys)
    try:
        client.connect(timeout_s=connect_timeout_s)
        return client.check_weights()
    except VideoSceneError as error:
        return {"error": f"{error.code.value}: {error.message}", "hint": error.hint}
    finally:
        client.close()


class VIDEOSCENE_OT_check_weights(bpy.types.Operator):
    bl_idname = CHECK_WEIGHTS_OPERATOR
    bl_label = "Check Weights"
    bl_description = (
        "Ask the backend to verify its installed weights (no GPU needed) and list what is "
        "present, what it is, and what is missing with where to get it"
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = preferences.get(context)
        try:
            address, keys, _local = client_glue.connection_settings(prefs)
        except VideoSceneError as error:
            WEIGHTS_REPORT.clear()
            WEIGHTS_REPORT.update(error=error.message, hint=error.hint)
            self.report({"ERROR"}, error.message)
            return {"CANCELLED"}
        WEIGHTS_REPORT.clear()
        WEIGHTS_REPORT["checking"] = True
        timeout = prefs.start_timeout_s
        client_glue.SESSION.run_in_background(
            lambda: fetch_weights_report(address, keys, timeout), _store_weights_report
        )
        return {"FINISHED"}


def _store_weights_report(report: dict) -> None:
    WEIGHTS_REPORT.clear()
    WEIGHTS_REPORT.update(report)


classes = (VIDEOSCENE_OT_check_weights,)

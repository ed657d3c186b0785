"""Add-on preferences: where the backend runs, keys for a remote one, the output folder, and
the backend's check of its installed weights (Check Weights)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from . import backend_process
from ._vendor.videoscene_protocol import private_paths
from ._vendor.videoscene_protocol.params import RENDER_VIDEO
from .param_settings import enum_items

ADDON_PACKAGE = __package__


DEFAULT_LOCAL_COMMAND = "videoscene-backend serve --bind {address} --output-dir {output_dir}"


class VideoScenePreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    backend_mode: EnumProperty(
        name="Backend",
        items=[
            ("LOCAL", "Local", "Start a backend process on this computer"),
            ("REMOTE", "Remote", "Connect to a backend on another computer (CurveZMQ keys)"),
        ],
        default="LOCAL",
    )
    local_command: StringProperty(
        name="Command",
        description="Starts the local backend; {address} and {output_dir} are filled in",
        default=DEFAULT_LOCAL_COMMAND,
    )
    local_address: StringProperty(
        name="Address",
        description="Loopback address the local backend listens on",
        default="tcp://127.0.0.1:5557",
    )
    start_timeout_s: FloatProperty(
        name="Start Timeout",
        description="Seconds to wait for a starting backend to answer",
        default=60.0,
        min=1.0,
        soft_max=600.0,
    )
    remote_address: StringProperty(
        name="Address", description="The remote backend's address", default="tcp://127.0.0.1:5557"
    )
    server_public_key: StringProperty(
        name="Server Public Key",
        description="The backend's public key file (server.key from 'videoscene-backend keygen')",
        subtype="FILE_PATH",
    )
    client_secret_key: StringProperty(
        name="Client Key Pair",
        description="This computer's key pair file (client.key_secret from the keygen command)",
        subtype="FILE_PATH",
    )
    output_dir: StringProperty(
        name="Output Folder",
        description="Frames, scene PLYs and the backend log go here (empty: a temporary folder)",
        subtype="DIR_PATH",
    )
    default_memory_mode: EnumProperty(
        name="Default Memory Mode",
        description=RENDER_VIDEO["memory_mode"].doc,
        items=enum_items(RENDER_VIDEO["memory_mode"]),
        default=RENDER_VIDEO["memory_mode"].default,
    )
    stop_backend_on_exit: BoolProperty(
        name="Stop Backend on Unregister",
        description="Stop the local backend when the add-on is disabled",
        default=True,
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        box = layout.box()
        if self.backend_mode == "LOCAL":
            box.prop(self, "local_command")
            box.prop(self, "local_address")
            box.prop(self, "start_timeout_s")
            state = "running" if backend_process.is_running() else "not running"
            box.label(text=f"Local backend: {state}", icon="CONSOLE")
            box.label(text=f"Log: {output_dir(self) / backend_process.LOG_NAME}")
        else:
            box.prop(self, "remote_address")
            box.prop(self, "server_public_key")
            box.prop(self, "client_secret_key")
            if not bpy.app.online_access:
                box.label(
                    text="Online access is off: only loopback addresses can be used",
                    icon="ERROR",
                )
        layout.prop(self, "output_dir")
        layout.prop(self, "default_memory_mode")
        layout.prop(self, "stop_backend_on_exit")
        weights = layout.box()
        weights.operator(CHECK_WEIGHTS_OPERATOR, icon="CHECKMARK")
        draw_weights_report(weights)


def get(context: bpy.types.Context | None = None) -> VideoScenePreferences:
    context = context or bpy.context
    return context.preferences.addons[ADDON_PACKAGE].preferences


def output_dir(prefs: VideoScenePreferences) -> Path:
    if prefs.output_dir:
        return Path(bpy.path.abspath(prefs.output_dir))
    return private_paths.default_output_dir()  # per user, never /tmp (made 0700 when used)


# The last weights report from the backend (or "checking" / "error"); shown in the preferences,
# filled by the Check Weights operator (operators/weights.py).
WEIGHTS_REPORT: dict = {}
CHECK_WEIGHTS_OPERATOR = "videoscene.check_weights"
MAX_REPORT_ROWS = 32  # the backend's text is shown, not trusted: bounded in count and length
MAX_LABEL_CHARS = 240
STATUS_ICONS = {"ok": "CHECKMARK", "missing": "ERROR", "invalid": "CANCEL"}


def _text(value: object) -> str:
    return str(value)[:MAX_LABEL_CHARS]


def draw_weights_report(layout: bpy.types.UILayout) -> None:
    if WEIGHTS_REPORT.get("checking"):
        layout.label(text="Checking the backend's weights...", icon="TIME")
        return
    if "error" in WEIGHTS_REPORT:
        layout.label(text=_text(WEIGHTS_REPORT["error"]), icon="ERROR")
        layout.label(text=_text(WEIGHTS_REPORT.get("hint", "")))
        return
    rows = WEIGHTS_REPORT.get("rows")
    if not isinstance(rows, list):
        return
    ready = "ready" if WEIGHTS_REPORT.get("ok") else "not ready"
    layout.label(text=_text(f"Weights under {WEIGHTS_REPORT.get('root', '?')}: {ready}"))
    for row in rows[:MAX_REPORT_ROWS]:
        if not isinstance(row, dict):
            continue
        status = _text(row.get("status", "?"))
        optional = status == "missing" and not row.get("required", True)
        column = layout.column(align=True)
        column.label(
            text=_text(f"{row.get('path', '?')}: {'optional, missing' if optional else status}"),
            icon="INFO" if optional else STATUS_ICONS.get(status, "QUESTION"),
        )
        column.label(text=_text(f"    {row.get('what', '')}"))
        if status != "ok":
            column.label(text=_text(f"    Source: {row.get('source', '')}"))
    layout.label(text=_text(WEIGHTS_REPORT.get("summary", "")))


classes = (VideoScenePreferences,)

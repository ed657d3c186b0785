"""Add-on preferences: where the backend runs, keys for a remote one, the output folder, the
backend's check of its installed weights (Check Weights) and of this computer's GPU (Check
GPU)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from . import backend_locator, backend_process
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
    backend_location: StringProperty(
        name="Backend Location",
        description=(
            "The folder you cloned VideoScene into (or its .venv); empty: a videoscene-backend "
            "on PATH, else the one this add-on was built beside"
        ),
        subtype="DIR_PATH",
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
            box.prop(self, "backend_location")
            draw_backend_choice(box, self)
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
        test = layout.box()
        buttons = test.row()
        buttons.operator(TEST_BACKEND_OPERATOR, icon="PLAY")
        buttons.operator(CHECK_GPU_OPERATOR, icon="MEMORY")
        draw_backend_report(test)
        draw_gpu_report(test)
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


def backend_location(prefs: VideoScenePreferences) -> str:
    """The Backend Location as an absolute path ('' when unset; '//' is the .blend's folder)."""
    return bpy.path.abspath(prefs.backend_location) if prefs.backend_location.strip() else ""


def backend_choice(prefs: VideoScenePreferences) -> tuple[str, str]:
    """(what local mode will run, where it came from) for the preferences to show."""
    try:
        argv = backend_process.split_command(
            prefs.local_command, prefs.local_address, output_dir(prefs)
        )
    except (ValueError, KeyError, IndexError) as exc:  # a malformed command template
        return "", f"The command cannot be read: {exc}"
    if not argv:
        return "", "The command is empty"
    if not backend_process.runs_located_backend(argv):
        return argv[0], "the Command as written"
    located = backend_locator.locate(backend_location(prefs))
    if not located.found:
        return "", backend_locator.not_found_message(located)
    return str(located.executable), located.source


BACKEND_VERSIONS = backend_locator.VersionCache()


def draw_backend_choice(layout: bpy.types.UILayout, prefs: VideoScenePreferences) -> None:
    program, source = backend_choice(prefs)
    if not program:
        layout.label(text=_text(source), icon="ERROR")
        draw_wrapped(layout, backend_locator.NOT_FOUND_HINT)
        return
    layout.label(text=_text(f"Runs: {program}"), icon="CHECKMARK")
    executable = Path(program)
    version = BACKEND_VERSIONS.get(executable) if executable.is_absolute() else None
    layout.label(text=_text(f"    found by: {source}; {version or 'reading its version...'}"))


# Test Backend's last report (operators/backend_test.py): "testing", or "error"/"hint", or the
# backend's answers ("rows" of (label, icon)); shown under the button.
BACKEND_REPORT: dict = {}
TEST_BACKEND_OPERATOR = "videoscene.test_backend"


def draw_backend_report(layout: bpy.types.UILayout) -> None:
    if BACKEND_REPORT.get("testing"):
        layout.label(text="Testing the backend...", icon="TIME")
        return
    for text, icon in BACKEND_REPORT.get("rows", [])[:MAX_REPORT_ROWS]:
        layout.label(text=_text(text), icon=icon)
    if "error" in BACKEND_REPORT:
        layout.label(text=_text(BACKEND_REPORT["error"]), icon="ERROR")
        draw_wrapped(layout, BACKEND_REPORT.get("hint", ""))


# Check GPU's last report (operators/gpu_check.py): "checking", or "error"/"hint", or "rows" of
# (label, icon) made from `videoscene-backend check --gpu --json`.
GPU_REPORT: dict = {}
CHECK_GPU_OPERATOR = "videoscene.check_gpu"


def draw_gpu_report(layout: bpy.types.UILayout) -> None:
    if GPU_REPORT.get("checking"):
        layout.label(text="Checking the GPU (minutes; progress in a terminal run)...", icon="TIME")
        return
    if "error" in GPU_REPORT:
        layout.label(text=_text(GPU_REPORT["error"]), icon="ERROR")
        draw_wrapped(layout, GPU_REPORT.get("hint", ""))
        return
    rows = GPU_REPORT.get("rows", [])
    for index, (text, icon) in enumerate(rows[:MAX_REPORT_ROWS]):
        if index == 0:  # the recommendation, wrapped: the line a user needs
            draw_wrapped(layout, text)
        else:
            layout.label(text=_text(text), icon=icon)


# The last weights report from the backend (or "checking" / "error"); shown in the preferences,
# filled by the Check Weights operator (operators/weights.py).
WEIGHTS_REPORT: dict = {}
CHECK_WEIGHTS_OPERATOR = "videoscene.check_weights"
MAX_REPORT_ROWS = 32  # the backend's text is shown, not trusted: bounded in count and length
MAX_LABEL_CHARS = 240
STATUS_ICONS = {"ok": "CHECKMARK", "missing": "ERROR", "invalid": "CANCEL"}


def _text(value: object) -> str:
    return str(value)[:MAX_LABEL_CHARS]


def draw_wrapped(layout: bpy.types.UILayout, text: object, width: int = 90) -> None:
    """A hint over several labels (a label is one line, cut at the window's edge)."""
    for line in textwrap.wrap(_text(text), width):
        layout.label(text=line)


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

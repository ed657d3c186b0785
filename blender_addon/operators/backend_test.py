"""Preferences > Test Backend: start (local mode) or reach the backend, then show what it says
about itself: protocol version, device, installed weights and, for a local one, the executable
and its log. Every failure names the command that fixes it. The talking happens on a worker
thread with a client of its own; the report lands in preferences.BACKEND_REPORT."""

from __future__ import annotations

import shlex
import time
from collections import Counter

import bpy

from .. import backend_locator, backend_process, client_glue, preferences
from .._vendor.videoscene_protocol import PROTOCOL_VERSION, versions
from .._vendor.videoscene_protocol.client import BackendClient
from .._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ..preferences import BACKEND_REPORT, TEST_BACKEND_OPERATOR

CONNECT_SLICE_S = 0.5  # between looks at whether the local process is still alive
WEIGHTS_TIMEOUT_S = 120.0
# The job kinds the add-on submits: a backend too old for one of them fails the test.
ADDON_JOB_KINDS = ("build_scene", "load_scene", "render_video")
# What the client raises when no welcome came in time (BACKEND_DEAD before the first welcome).
NO_ANSWER = (ErrorCode.TIMEOUT, ErrorCode.BACKEND_DEAD)


def _connect(client: BackendClient, timeout_s: float, local: bool) -> dict:
    """The welcome; for a local backend, stop waiting as soon as its process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return client.connect(timeout_s=max(0.05, min(CONNECT_SLICE_S, remaining)))
        except VideoSceneError as error:
            if error.code not in NO_ANSWER or remaining <= CONNECT_SLICE_S:
                raise
        if local and not backend_process.is_running():
            raise _exited_error()


def _exited_error() -> VideoSceneError:
    tail = backend_process.log_tail(3).replace("\n", " | ")
    command = backend_process.last_command()
    return VideoSceneError(
        ErrorCode.BACKEND_DEAD,
        f"The local backend exited (code {backend_process.exit_code()}). {tail}".strip(),
        f"Run it in a terminal to see why: {shlex.join(command)} (log: "
        f"{backend_process.log_path()}); if it is not installed, {backend_locator.NOT_FOUND_HINT}",
    )


def _device_row(device: object) -> tuple[str, str]:
    name = str(device or "unknown")
    if name.lower() == "cpu":
        return (
            "Device: CPU (no CUDA GPU: scenes and coarse renders work, the video model needs one)",
            "INFO",
        )
    return f"Device: {name} (CUDA)", "CHECKMARK"


def _weights_rows(report: dict, program: str) -> list[tuple[str, str]]:
    root = report.get("root", "?")
    rows = report.get("rows") if isinstance(report.get("rows"), list) else []
    missing = [
        str(row.get("path", "?"))
        for row in rows
        if isinstance(row, dict) and row.get("status") != "ok" and row.get("required", True)
    ]
    if report.get("ok") and not missing:
        return [(f"Weights: found, under {root}", "CHECKMARK")]
    folders = Counter(path.split("/", 1)[0] for path in missing)  # one short line, not 7 paths
    listed = ", ".join(f"{folder}/ ({count} files)" for folder, count in sorted(folders.items()))
    return [
        (f"Weights: missing under {root}: {listed or '?'}", "ERROR"),
        ("    Without them you get the coarse render; Check Weights lists each file.", "NONE"),
        # `download` fetches what the hub hosts and says where to get the rest by hand.
        (f"    To fetch them: {program} download --what all --checkpoints {root}", "NONE"),
    ]


def probe_backend(address: str, keys: dict, timeout_s: float, local: bool) -> dict:
    """Runs on a worker thread: the report rows, or {"error", "hint"} (and the rows so far)."""
    rows: list[tuple[str, str]] = []
    program = "videoscene-backend"
    if local:
        command = backend_process.last_command()
        program = command[0] if command else program
        rows.append((f"Backend: {shlex.join(command)}", "CONSOLE"))
    client = BackendClient(address, **keys)
    try:
        welcome = _connect(client, timeout_s, local)
        version = welcome.get("version")
        for kind in ADDON_JOB_KINDS:
            versions.check_backend(kind, version)
        rows.append((f"Protocol {version} (this add-on: {PROTOCOL_VERSION})", "CHECKMARK"))
        rows.append(_device_row(welcome.get("device")))
        rows += _weights_rows(client.check_weights(timeout_s=WEIGHTS_TIMEOUT_S), program)
    except VideoSceneError as error:
        report = {"rows": rows, "error": f"{error.code.value}: {error.message}"}
        report["hint"] = error.hint
        if error.code in NO_ANSWER and not (local and not backend_process.is_running()):
            report["hint"] = _timeout_hint(local, program, address)
        return _with_log(report, local)
    finally:
        client.close()
    return _with_log({"rows": rows}, local)


def _timeout_hint(local: bool, program: str, address: str) -> str:
    if local:
        return (
            f"The backend is running but did not answer at {address}: it may still be loading "
            f"(raise Start Timeout) or another program holds the port; its log is "
            f"{backend_process.log_path()}."
        )
    return (
        f"Nothing answered at {address}. On the backend's machine, run: {program} serve "
        "--bind tcp://0.0.0.0:5557 --keys-dir KEYS, and check the address and key files here."
    )


def _with_log(report: dict, local: bool) -> dict:
    log = backend_process.log_path()
    if local and log is not None:
        report.setdefault("rows", []).append((f"Log: {log}", "TEXT"))
    return report


class VIDEOSCENE_OT_test_backend(bpy.types.Operator):
    bl_idname = TEST_BACKEND_OPERATOR
    bl_label = "Test Backend"
    bl_description = (
        "Start (Local) or reach (Remote) the backend and show its protocol version, device, "
        "installed weights and log; a failure names the command that fixes it"
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = preferences.get(context)
        BACKEND_REPORT.clear()
        try:
            address, keys, local = client_glue.connection_settings(prefs)
        except VideoSceneError as error:
            BACKEND_REPORT.update(error=error.message, hint=error.hint)
            self.report({"ERROR"}, error.message)
            return {"CANCELLED"}
        BACKEND_REPORT["testing"] = True
        timeout = prefs.start_timeout_s
        client_glue.SESSION.run_in_background(
            lambda: probe_backend(address, keys, timeout, local), _store_report
        )
        return {"FINISHED"}


def _store_report(report: dict) -> None:
    BACKEND_REPORT.clear()
    BACKEND_REPORT.update(report)


classes = (VIDEOSCENE_OT_test_backend,)

"""Preferences > Check GPU: runs `videoscene-backend check --gpu --json` on this computer (the
local backend's program) on a worker thread, so Blender's UI never waits, and shows what it
measured: each memory mode's result, the mode to use, the prior, renders and fit steps. The
report lands in preferences.GPU_REPORT, which the preferences draw. It runs on a thread of its
own, not the session's one background worker: minutes of GPU check must not queue Test Backend
or Check Weights behind them."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import bpy

from .. import preferences
from ..preferences import CHECK_GPU_OPERATOR, GPU_REPORT

# The check takes up to about 8 minutes on an H100 (docs/gpu-check.md); slower cards longer.
GPU_CHECK_TIMEOUT_S = 30 * 60.0
STDERR_TAIL_LINES = 3


def last_json_object(stdout: str) -> dict | None:
    """The report: the last stdout line that is a JSON object (the table comes before it)."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _mode_row(mode: dict) -> tuple[str, str]:
    status = str(mode.get("status", "?"))
    text = f"{mode.get('mode', '?')} ({mode.get('weights', '?')} weights): {status}"
    if mode.get("failed_stage"):
        text += f" at {mode['failed_stage']}"
    if mode.get("window_s") is not None:
        text += f", window {mode['window_s']:.1f} s"
    if mode.get("peak_gib") is not None:
        text += f", peak {mode['peak_gib']:.1f} GiB"
    return text, "CHECKMARK" if status == "fit" else "ERROR"


def report_rows(report: dict) -> list[tuple[str, str]]:
    """(label, icon) rows of the backend's JSON report, the recommendation first."""
    device = report.get("device", "?")
    rows: list[tuple[str, str]] = []
    if report.get("recommendation"):
        rows.append((str(report["recommendation"]), "INFO"))
    if report.get("cuda"):
        rows.append((f"GPU: {device}, {report.get('total_gib', '?')} GiB", "NONE"))
    else:
        rows.append(
            (
                "No CUDA GPU: the video model needs an NVIDIA GPU; jobs return the coarse frames",
                "INFO",
            )
        )
    rows.append(
        (
            f"Measured with random weights of the real shapes, one {report.get('window', '?')} window",
            "NONE",
        )
    )
    rows += [_mode_row(mode) for mode in report.get("modes", []) if isinstance(mode, dict)]
    for key, title in (("prior", "Prior"), ("render", "Render"), ("fit", "Fit")):
        section = report.get(key)
        if isinstance(section, dict) and section.get("summary"):
            rows.append((f"{title}: {section['summary']}", "NONE"))
    for error in report.get("errors", []):
        rows.append((str(error), "ERROR"))
    if report.get("interrupted"):
        rows.append(("The check was interrupted: these are partial figures", "ERROR"))
    if report.get("saved_to"):
        rows.append((f"Saved: {report['saved_to']}", "FILE"))
    return rows


def run_check_gpu(program: str, output_dir: Path, timeout_s: float = GPU_CHECK_TIMEOUT_S) -> dict:
    """Runs on a worker thread: {"rows": [...]} or {"error", "hint"}."""
    command = [program, "check", "--gpu", "--json", "--output-dir", str(output_dir)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return {
            "error": f"The GPU check took longer than {timeout_s / 60:.0f} minutes and was stopped.",
            "hint": f"Run it in a terminal to watch its progress: {' '.join(command)}",
        }
    except OSError as error:
        return {"error": f"Cannot run {program}: {error}", "hint": "Press Test Backend first."}
    report = last_json_object(done.stdout)
    if report is None:
        tail = " | ".join(done.stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        return {
            "error": f"The GPU check ended (code {done.returncode}) without a report. {tail}",
            "hint": f"Run it in a terminal to see why: {' '.join(command)}",
        }
    return {"rows": report_rows(report)}


class VIDEOSCENE_OT_check_gpu(bpy.types.Operator):
    bl_idname = CHECK_GPU_OPERATOR
    bl_label = "Check GPU"
    bl_description = (
        "Measure this computer's GPU with the video model at its real size (random weights, "
        "nothing downloaded): which memory mode fits and how long a window takes. Takes "
        "minutes and uses the GPU meanwhile"
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = preferences.get(context)
        GPU_REPORT.clear()
        if prefs.backend_mode != "LOCAL":
            GPU_REPORT.update(
                error="Check GPU measures this computer's GPU; the backend is remote.",
                hint="On the backend's machine run: videoscene-backend check --gpu",
            )
            return {"CANCELLED"}
        program, source = preferences.backend_choice(prefs)
        if not program:
            GPU_REPORT.update(error=source, hint="Set Backend Location, then press Check GPU.")
            self.report({"ERROR"}, source)
            return {"CANCELLED"}
        GPU_REPORT["checking"] = True
        output = preferences.output_dir(prefs)
        run_on_thread(lambda: run_check_gpu(program, output), _store_gpu_report)
        return {"FINISHED"}


POLL_S = 1.0


def run_on_thread(work: Callable[[], dict], on_done: Callable[[dict], None]) -> threading.Thread:
    """work() on a daemon thread; on_done(its report) on Blender's main thread (a timer)."""
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["report"] = work()
        except Exception as error:  # a bug here must still end the "checking" state
            outcome["report"] = {"error": f"Check GPU failed: {error!r}", "hint": ""}

    thread = threading.Thread(target=target, name="videoscene-gpu-check", daemon=True)
    thread.start()

    def poll() -> float | None:
        if thread.is_alive():
            return POLL_S
        on_done(outcome.get("report", {}))
        return None

    bpy.app.timers.register(poll, first_interval=POLL_S)
    return thread


def _store_gpu_report(report: dict) -> None:
    GPU_REPORT.clear()
    GPU_REPORT.update(report)
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


classes = (VIDEOSCENE_OT_check_gpu,)

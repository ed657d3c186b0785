"""Check GPU in the add-on preferences: it runs `check --gpu --json` as a program on a thread
of its own and turns the last JSON line into labels, the recommendation first; a program that
ends without a report gives an error naming the command, never a hang."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import bpy

from .conftest import submodule
from .test_check_weights import LabelRecorder

REPORT = {
    "check": "gpu",
    "device": "NVIDIA Test 24GB",
    "cuda": True,
    "total_gib": 23.6,
    "window": "49x480x720",
    "modes": [
        {"mode": "lowest", "weights": "random", "status": "fit", "window_s": 41.5, "peak_gib": 9.2},
        {"mode": "low", "weights": "random", "status": "out of memory", "failed_stage": "decode"},
    ],
    "recommendation": "'auto' would pick 'low' here, which ran out of memory: choose 'lowest'.",
    "render": {"summary": "49 frames: gsplat 300.0 fps"},
    "interrupted": False,
    "errors": [],
}


def fake_backend(folder: Path, stdout: str, code: int = 0) -> Path:
    """A program that prints what `check --gpu --json` would and checks its arguments."""
    program = folder / "fake-backend"
    program.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "assert sys.argv[1:4] == ['check', '--gpu', '--json'], sys.argv\n"
        "assert sys.argv[4] == '--output-dir'\n"
        f"sys.stdout.write({stdout!r})\n"
        f"sys.exit({code})\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


def test_the_report_becomes_rows_recommendation_first(addon, tmp_path: Path) -> None:
    gpu_check = submodule("operators.gpu_check")
    program = fake_backend(
        tmp_path, "VideoScene GPU check ...table...\n" + json.dumps(REPORT) + "\n", 0
    )
    result = gpu_check.run_check_gpu(str(program), tmp_path)
    rows = result["rows"]
    assert rows[0] == (REPORT["recommendation"], "INFO")
    assert ("lowest (random weights): fit, window 41.5 s, peak 9.2 GiB", "CHECKMARK") in rows
    assert ("low (random weights): out of memory at decode", "ERROR") in rows
    assert any("random weights of the real shapes" in text for text, _ in rows)
    preferences = submodule("preferences")
    preferences.GPU_REPORT.clear()
    preferences.GPU_REPORT.update(result)
    layout = LabelRecorder()
    preferences.draw_gpu_report(layout)
    assert layout.labels[0][0].startswith("'auto' would pick 'low' here")


def test_a_program_without_a_report_is_an_error_naming_the_command(addon, tmp_path: Path) -> None:
    gpu_check = submodule("operators.gpu_check")
    program = fake_backend(tmp_path, "Traceback: boom\n", 1)
    result = gpu_check.run_check_gpu(str(program), tmp_path)
    assert "without a report" in result["error"] and "check --gpu --json" in result["hint"]


def test_the_operator_is_registered_and_waits_off_the_main_thread(addon, tmp_path) -> None:
    gpu_check = submodule("operators.gpu_check")
    assert hasattr(bpy.types, "VIDEOSCENE_OT_check_gpu")
    done: list[dict] = []
    thread = gpu_check.run_on_thread(lambda: (time.sleep(0.2), {"rows": []})[1], done.append)
    assert not done  # returned at once; the report comes later from a timer
    thread.join(5)
    assert not thread.is_alive()

"""Check Weights in the add-on preferences: the backend's report, fetched off the main thread,
shown as labels; a backend that does not answer gives an error, never a hang."""

from __future__ import annotations

import time

import bpy
import pytest

from .conftest import ADDON_MODULE, submodule
from .test_end_to_end import BACKEND, configure, free_port, make_tiny_video_weights

pytestmark = pytest.mark.skipif(not BACKEND.exists(), reason="videoscene-backend not installed")


class LabelRecorder:
    """Stands in for the preferences' UILayout: keeps the labels the report draws."""

    def __init__(self) -> None:
        self.labels: list[tuple[str, str]] = []

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.labels.append((text, icon))

    def column(self, align: bool = False) -> LabelRecorder:
        return self


def wait_for_report(timeout_s: float = 150.0) -> dict:
    client_glue, preferences = submodule("client_glue"), submodule("preferences")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        client_glue.step()
        if not preferences.WEIGHTS_REPORT.get("checking"):
            return preferences.WEIGHTS_REPORT
        time.sleep(0.05)
    raise AssertionError(f"no weights report after {timeout_s} s")


def test_check_weights_shows_the_backends_report(addon, tmp_path):
    configure(tmp_path)
    weights = make_tiny_video_weights(tmp_path / "checkpoints")
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.local_command += f" --checkpoints {weights}"
    assert bpy.ops.videoscene.check_weights() == {"FINISHED"}
    preferences = submodule("preferences")
    assert preferences.WEIGHTS_REPORT.get("checking")  # the operator returned at once
    report = wait_for_report()
    assert report["ok"] is True, report
    layout = LabelRecorder()
    preferences.draw_weights_report(layout)
    texts = [text for text, _ in layout.labels]
    assert texts[0] == f"Weights under {weights}: ready"
    assert ("videoscene/model.safetensors: ok", "CHECKMARK") in layout.labels
    assert ("noposplat/mixRe10kDl3dv_512x512.ckpt: optional, missing", "INFO") in layout.labels
    assert any("all 65 tensors of the model replaced" in text for text in texts)
    assert any(text.startswith("    Source: botaoye/NoPoSplat") for text in texts)


def test_check_weights_against_a_silent_backend_reports_an_error(addon):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend_mode = "REMOTE"
    prefs.remote_address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens here
    prefs.start_timeout_s = 1.0
    started = time.monotonic()
    assert bpy.ops.videoscene.check_weights() == {"FINISHED"}
    report = wait_for_report(timeout_s=30.0)
    assert time.monotonic() - started < 30.0
    assert report["error"].startswith(("timeout", "backend_dead")), report
    layout = LabelRecorder()
    submodule("preferences").draw_weights_report(layout)
    assert layout.labels[0][1] == "ERROR"

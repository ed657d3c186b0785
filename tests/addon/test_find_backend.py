"""The add-on finds its backend as a user's install does (issue 25): the zip conftest builds with
build_addon.py from the backend's venv records that venv's videoscene-backend, so with the
default preferences and NO backend on PATH, Build Scene and Generate Video run; Test Backend
reports protocol, device, weights and log; with no backend anywhere, the error names the
README's set-up command."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import bpy
import pytest

from .conftest import ADDON_MODULE, BACKEND, keyframed_camera, submodule
from .test_end_to_end import assert_no_error, configure, run_until_idle, strips

pytestmark = pytest.mark.skipif(not BACKEND.exists(), reason="videoscene-backend not installed")


@pytest.fixture
def no_backend_on_path(monkeypatch, tmp_path):
    """PATH as Blender started from a desktop sees it: no videoscene-backend on it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def default_command(tmp_path: Path) -> None:
    """configure()'s photos, port and small output, with the preferences' own command."""
    configure(tmp_path)
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.property_unset("local_command")
    prefs.property_unset("backend_location")
    assert prefs.local_command.startswith("videoscene-backend serve ")


def test_the_built_zip_records_the_venvs_backend(addon_zip):
    with zipfile.ZipFile(addon_zip) as archive:
        record = json.loads(archive.read("local_backend.json"))
    assert Path(record["backend"]) == BACKEND.resolve()


def test_build_and_generate_with_the_recorded_backend_not_on_path(
    addon, tmp_path, no_backend_on_path
):
    default_command(tmp_path)
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    program, source = submodule("preferences").backend_choice(prefs)
    assert (Path(program), source) == (BACKEND.resolve(), "this add-on's build")

    scene = bpy.context.scene
    scene.videoscene.camera = keyframed_camera(scene, 1, 6)
    scene.videoscene.refine = False
    assert bpy.ops.videoscene.build_scene() == {"FINISHED"}
    run_until_idle()
    assert_no_error()
    assert scene.videoscene.scene_empty is not None
    assert Path(submodule("backend_process").last_command()[0]) == BACKEND.resolve()

    assert bpy.ops.videoscene.generate_video() == {"FINISHED"}
    run_until_idle()
    assert_no_error()
    (coarse,) = strips(scene)
    assert len(coarse.elements) == 6


def wait_for_backend_report(timeout_s: float = 240.0) -> dict:
    client_glue, preferences = submodule("client_glue"), submodule("preferences")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        client_glue.step()
        if not preferences.BACKEND_REPORT.get("testing"):
            return preferences.BACKEND_REPORT
        time.sleep(0.05)
    raise AssertionError(f"no Test Backend report after {timeout_s} s")


def test_test_backend_shows_protocol_device_weights_and_log(addon, tmp_path, no_backend_on_path):
    default_command(tmp_path)
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.local_command += f" --checkpoints {tmp_path / 'no-weights'}"
    assert bpy.ops.videoscene.test_backend() == {"FINISHED"}
    report = wait_for_backend_report()
    assert "error" not in report, report
    texts = [text for text, _ in report["rows"]]
    protocol = submodule("_vendor.videoscene_protocol").PROTOCOL_VERSION
    assert texts[0].startswith(f"Backend: {BACKEND.resolve()} serve --bind ")
    assert f"Protocol {protocol} (this add-on: {protocol})" in texts
    assert any(t.startswith("Device: CPU") or t.endswith("(CUDA)") for t in texts), texts
    assert any(t.startswith(f"Weights: missing under {tmp_path / 'no-weights'}") for t in texts)
    fetch = f"{BACKEND.resolve()} download --what all --checkpoints {tmp_path / 'no-weights'}"
    assert any(t.endswith(fetch) for t in texts), texts
    log = Path(texts[-1].removeprefix("Log: "))
    assert log.is_file() and log.name == "backend.log"


def test_no_backend_anywhere_names_the_readme_command(
    addon, tmp_path, no_backend_on_path, monkeypatch
):
    default_command(tmp_path)
    locator = submodule("backend_locator")
    monkeypatch.setattr(locator, "RECORD_FILE", tmp_path / "no-record.json")
    scene = bpy.context.scene
    scene.videoscene.camera = keyframed_camera(scene, 1, 6)
    with pytest.raises(RuntimeError, match="was not found"):
        bpy.ops.videoscene.build_scene()
    state = bpy.context.window_manager.videoscene_state
    assert "videoscene-backend" in state.error_message and "PATH" in state.error_message
    assert "bash dev.sh demo" in state.error_hint
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "bash dev.sh demo" in readme

    # Test Backend says the same, at once.
    with pytest.raises(RuntimeError, match="was not found"):
        bpy.ops.videoscene.test_backend()
    report = submodule("preferences").BACKEND_REPORT
    assert "was not found" in report["error"] and "bash dev.sh demo" in report["hint"]


class Recorder:
    """Stands in for a UILayout: keeps each call (label texts, props, operators)."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self

        return record


def test_preferences_show_which_backend_runs_and_its_version(addon, no_backend_on_path):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    calls: list = []

    class DrawnPreferences:  # the real preferences, drawn into a recorder
        layout = Recorder(calls)

        def __getattr__(self, name):
            return getattr(prefs, name)

    def labels() -> list[str]:
        calls.clear()
        type(prefs).draw(DrawnPreferences(), bpy.context)
        return [kwargs.get("text", "") for name, _, kwargs in calls if name == "label"]

    deadline = time.monotonic() + 120.0
    while not any("protocol" in text for text in labels()) and time.monotonic() < deadline:
        time.sleep(0.1)
    texts = labels()
    assert f"Runs: {BACKEND.resolve()}" in texts
    found_by = next(text for text in texts if text.strip().startswith("found by:"))
    protocol = submodule("_vendor.videoscene_protocol").PROTOCOL_VERSION
    assert found_by.strip().startswith("found by: this add-on's build; videoscene-backend ")
    assert found_by.endswith(f"(protocol {protocol})")
    assert ("operator", ("videoscene.test_backend",)) in [(n, a) for n, a, _ in calls]
    assert "backend_location" in [a[1] for n, a, _ in calls if n == "prop"]

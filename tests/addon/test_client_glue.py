"""The timer-driven glue without a working backend: bad commands and dying processes turn into
errors within a bounded number of steps; nothing blocks."""

from __future__ import annotations

import sys
import time

import bpy
import pytest

from .conftest import ADDON_MODULE, submodule


def step_until_idle(max_steps: int = 400) -> int:
    client_glue = submodule("client_glue")
    state = bpy.context.window_manager.videoscene_state
    for count in range(max_steps):
        if not client_glue.step() and not state.busy:
            return count
        time.sleep(0.02)
    raise AssertionError(f"still busy after {max_steps} steps: {state.status}")


def use_photos(tmp_path) -> None:
    settings = bpy.context.scene.videoscene
    for name in ("a", "b"):
        path = tmp_path / f"{name}.png"
        path.write_bytes(b"\x89PNG not really")
        setattr(settings, f"image_{name}", str(path))


def test_missing_backend_executable_is_reported_by_the_operator(addon, tmp_path):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.local_command = str(tmp_path / "no-such-backend") + " serve --bind {address}"
    use_photos(tmp_path)
    with pytest.raises(RuntimeError, match="Could not start the backend"):
        bpy.ops.videoscene.build_scene()  # an operator's ERROR report raises in Python
    state = bpy.context.window_manager.videoscene_state
    assert "Could not start the backend" in state.error_message
    assert "preferences" in state.error_hint


def test_backend_that_exits_is_reported_with_its_log(addon, tmp_path):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.local_address = "tcp://127.0.0.1:5999"
    script = "import sys; print('backend says: cannot bind'); sys.exit(3)"
    prefs.local_command = f'"{sys.executable}" -c "{script}"'
    use_photos(tmp_path)
    assert bpy.ops.videoscene.build_scene() == {"FINISHED"}
    step_until_idle()
    state = bpy.context.window_manager.videoscene_state
    assert "backend_dead" in state.status
    assert "code 3" in state.error_message and "cannot bind" in state.error_message
    assert "backend.log" in state.error_hint
    assert submodule("client_glue").SESSION.client is None  # the next job starts afresh


def test_unreachable_remote_backend_times_out(addon, tmp_path):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend_mode = "REMOTE"
    prefs.remote_address = "tcp://127.0.0.1:5998"  # nothing listens here
    prefs.start_timeout_s = 1.0
    use_photos(tmp_path)
    assert bpy.ops.videoscene.build_scene() == {"FINISHED"}
    started = time.monotonic()
    step_until_idle()
    assert time.monotonic() - started < 10.0
    state = bpy.context.window_manager.videoscene_state
    assert "timeout" in state.status and state.error_message


def test_cancel_drops_queued_jobs(addon, tmp_path):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.backend_mode = "REMOTE"
    prefs.remote_address = "tcp://127.0.0.1:5997"
    use_photos(tmp_path)
    assert bpy.ops.videoscene.build_scene() == {"FINISHED"}
    assert bpy.ops.videoscene.cancel() == {"FINISHED"}
    state = bpy.context.window_manager.videoscene_state
    assert state.status == "Cancelled" and not state.busy
    assert not submodule("client_glue").step()


def test_release_gpu_without_connection_reports(addon):
    with pytest.raises(RuntimeError, match="Not connected"):
        bpy.ops.videoscene.release_gpu()
    assert "Not connected" in bpy.context.window_manager.videoscene_state.error_message

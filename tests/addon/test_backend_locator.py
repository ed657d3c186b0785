"""backend_locator: which videoscene-backend local mode runs (Backend Location, PATH, the build's
record), for the Linux/macOS and Windows venv layouts. The module has no bpy, so it is loaded
from the source tree by file (these tests need no built add-on)."""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_locator():
    name = "backend_locator_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "blender_addon/backend_locator.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


locator = load_locator()


def script(path: Path, executable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 'videoscene-backend 9.9 (protocol 1.3)'\n")
    mode = path.stat().st_mode
    path.chmod(mode | stat.S_IXUSR if executable else mode & ~0o111)
    return path


def record(folder: Path, backend: object) -> Path:
    path = folder / locator.RECORD_NAME
    path.write_text(json.dumps({"backend": backend}))
    return path


NO_RECORD = Path("/nonexistent/local_backend.json")


@pytest.mark.parametrize("given", ["clone", "venv", "bin", "file"])
def test_backend_location_is_the_clone_its_venv_its_bin_or_the_file(tmp_path, given):
    backend = script(tmp_path / "clone/.venv/bin/videoscene-backend")
    location = {
        "clone": tmp_path / "clone",
        "venv": tmp_path / "clone/.venv",
        "bin": tmp_path / "clone/.venv/bin",
        "file": backend,
    }[given]
    found = locator.locate(str(location), path_env="", record_file=NO_RECORD, windows=False)
    assert found.executable == backend and found.source == locator.SOURCE_LOCATION


@pytest.mark.parametrize("given", ["clone", "venv", "scripts"])
def test_windows_layout_scripts_exe(tmp_path, given):
    backend = script(tmp_path / "clone/.venv/Scripts/videoscene-backend.exe")
    script(tmp_path / "clone/.venv/Scripts/videoscene-backend")  # pip's -script.py sibling
    location = {
        "clone": tmp_path / "clone",
        "venv": tmp_path / "clone/.venv",
        "scripts": tmp_path / "clone/.venv/Scripts",
    }[given]
    found = locator.locate(str(location), path_env="", record_file=NO_RECORD, windows=True)
    assert found.executable == backend  # the .exe first
    # The POSIX layout does not look into Scripts\ nor for .exe.
    posix = locator.locate(str(location), path_env="", record_file=NO_RECORD, windows=False)
    assert posix.executable != backend


def test_order_location_then_path_then_record(tmp_path):
    in_location = script(tmp_path / "clone/.venv/bin/videoscene-backend")
    on_path = script(tmp_path / "path/videoscene-backend")
    recorded = script(tmp_path / "recorded/bin/videoscene-backend")
    record_file = record(tmp_path, str(recorded))
    path_env = str(tmp_path / "path")

    def found(location: str, path: str) -> tuple[Path | None, str]:
        result = locator.locate(location, path_env=path, record_file=record_file, windows=False)
        return result.executable, result.source

    assert found(str(tmp_path / "clone"), path_env) == (in_location, locator.SOURCE_LOCATION)
    assert found("", path_env) == (on_path, locator.SOURCE_PATH)
    assert found("", "") == (recorded, locator.SOURCE_RECORDED)
    # A location without a backend falls through to the next place.
    assert found(str(tmp_path / "empty"), path_env) == (on_path, locator.SOURCE_PATH)


def test_a_recorded_backend_that_is_gone_or_malformed_is_not_used(tmp_path):
    gone = tmp_path / "deleted/.venv/bin/videoscene-backend"
    result = locator.locate("", path_env="", record_file=record(tmp_path, str(gone)))
    assert not result.found
    assert any(str(gone) in place for place in result.looked_in)
    for bad in (["a", "list"], 7, "", "relative/videoscene-backend", None):
        assert locator.recorded_executable(record(tmp_path, bad)) is None
    (tmp_path / locator.RECORD_NAME).write_text("{not json")
    assert locator.recorded_executable(tmp_path / locator.RECORD_NAME) is None
    (tmp_path / locator.RECORD_NAME).write_bytes(b" " * (locator.MAX_RECORD_BYTES + 1))
    assert locator.recorded_executable(tmp_path / locator.RECORD_NAME) is None


@pytest.mark.skipif(sys.platform == "win32", reason="execute bits are POSIX")
def test_a_file_without_execute_bit_is_skipped(tmp_path):
    script(tmp_path / "clone/.venv/bin/videoscene-backend", executable=False)
    result = locator.locate(str(tmp_path / "clone"), path_env="", record_file=NO_RECORD)
    assert not result.found


def test_not_found_names_every_place_and_the_readme_command(tmp_path):
    result = locator.locate(str(tmp_path / "nowhere"), path_env="", record_file=NO_RECORD)
    message = locator.not_found_message(result)
    assert str(tmp_path / "nowhere") in message and "PATH" in message
    assert "bash dev.sh demo" in locator.NOT_FOUND_HINT


def test_home_folder_is_expanded(tmp_path, monkeypatch):
    backend = script(tmp_path / "home/clone/.venv/bin/videoscene-backend")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    result = locator.locate("~/clone", path_env="", record_file=NO_RECORD, windows=False)
    assert result.executable == backend


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for the backend")
def test_version_is_read_from_the_executable_off_the_calling_thread(tmp_path):
    backend = script(tmp_path / "videoscene-backend")
    assert locator.read_version(backend) == "videoscene-backend 9.9 (protocol 1.3)"
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    assert locator.read_version(broken) == "version unknown (exit code 3)"
    cache = locator.VersionCache()
    assert cache.get(backend) is None  # being read
    deadline = time.monotonic() + 60.0
    while cache.get(backend) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.get(backend) == "videoscene-backend 9.9 (protocol 1.3)"

"""The local backend process the add-on starts (local mode) and stops on unregister."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from . import backend_locator
from ._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ._vendor.videoscene_protocol.private_paths import make_private_dir, open_log

LOG_NAME = "backend.log"
KEYS_ENV = "VIDEOSCENE_KEYS_DIR"
_process: subprocess.Popen | None = None
_log_path: Path | None = None
_argv: list[str] = []  # the command of the process we started last


def split_command(template: str, address: str, output_dir: Path) -> list[str]:
    filled = template.format(address=address, output_dir=str(output_dir))
    return shlex.split(filled, posix=sys.platform != "win32")


def runs_located_backend(argv: list[str]) -> bool:
    """Whether the command's program is the bare name the add-on looks up itself."""
    return bool(argv) and argv[0] == backend_locator.EXECUTABLE


def command_line(template: str, address: str, output_dir: Path, location: str = "") -> list[str]:
    """Split the configured command; {address} and {output_dir} are filled in. A bare
    `videoscene-backend` program is the one backend_locator finds (Backend Location, PATH, the
    build's venv); any other program runs as written."""
    argv = split_command(template, address, output_dir)
    if runs_located_backend(argv):
        located = backend_locator.locate(location)
        if not located.found:
            raise VideoSceneError(
                ErrorCode.BACKEND_DEAD,
                backend_locator.not_found_message(located),
                backend_locator.NOT_FOUND_HINT,
            )
        argv[0] = str(located.executable)
    return argv


def start(
    template: str,
    address: str,
    output_dir: Path,
    keys_dir: Path | None = None,
    location: str = "",
) -> subprocess.Popen:
    """Start the backend unless the one we started is still running. Output goes to a log file
    in the output folder (shown in the preferences). `keys_dir`: the private CurveZMQ keys it
    serves with (VIDEOSCENE_KEYS_DIR, read by `serve`; an environment variable, unlike the
    command line, is readable by our own user only). `location`: the Backend Location."""
    global _process, _log_path, _argv
    if is_running():
        return _process
    argv = _argv = command_line(template, address, output_dir, location)
    make_private_dir(output_dir, "output folder")
    _log_path = output_dir / LOG_NAME
    env = {**os.environ, **({KEYS_ENV: str(keys_dir)} if keys_dir is not None else {})}
    log = open_log(_log_path)  # 0600, never through a planted link; the child keeps its copy
    try:
        _process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    except OSError as exc:
        raise VideoSceneError(
            ErrorCode.BACKEND_DEAD,
            f"Could not start the backend ({argv[0]}): {exc.strerror or exc}.",
            "Check the command and Backend Location in the VideoScene preferences. "
            f"{backend_locator.NOT_FOUND_HINT}",
        ) from exc
    finally:
        log.close()
    return _process


def is_running() -> bool:
    return _process is not None and _process.poll() is None


def exit_code() -> int | None:
    return None if _process is None else _process.poll()


def pid() -> int | None:
    return None if _process is None else _process.pid


def last_command() -> list[str]:
    return list(_argv)


def log_path() -> Path | None:
    return _log_path


def log_tail(lines: int = 8) -> str:
    if _log_path is None or not _log_path.exists():
        return ""
    text = _log_path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def stop(timeout_s: float = 5.0) -> None:
    """Terminate the process we started (kill it if it does not exit in time)."""
    global _process
    process, _process = _process, None
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)

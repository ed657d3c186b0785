"""Which `videoscene-backend` the add-on starts in local mode, found without hand-editing.

In order: the Backend Location set in the preferences (the clone, its venv, the venv's bin or
Scripts folder, or the executable itself), a `videoscene-backend` on PATH, and the executable
that build_addon.py recorded for the venv it ran from (local_backend.json in the add-on, used
only while that file exists). No bpy here: tests/addon/test_backend_locator.py covers the Linux,
macOS and Windows layouts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

EXECUTABLE = "videoscene-backend"
RECORD_NAME = "local_backend.json"  # written into the zip by build_addon.py
RECORD_FILE = Path(__file__).resolve().with_name(RECORD_NAME)
MAX_RECORD_BYTES = 64 * 1024
# What the README says to run in the clone; every "not found" hint names it.
SETUP_COMMAND = "bash dev.sh demo"
NOT_FOUND_HINT = (
    f"In the folder you cloned, run: {SETUP_COMMAND} (it installs the backend into .venv and "
    "builds an add-on zip that knows where it is; install that zip), or set Backend Location "
    "in the VideoScene preferences to the clone or its .venv."
)
VERSION_TIMEOUT_S = 30.0

SOURCE_LOCATION = "Backend Location"
SOURCE_PATH = "PATH"
SOURCE_RECORDED = "this add-on's build"


@dataclass(frozen=True)
class Located:
    """The executable to run (None: none found), where it was found, and every place looked."""

    executable: Path | None
    source: str
    looked_in: tuple[str, ...]

    @property
    def found(self) -> bool:
        return self.executable is not None


def executable_names(windows: bool) -> tuple[str, ...]:
    """pip installs a console script as NAME.exe on Windows, as NAME elsewhere."""
    return (f"{EXECUTABLE}.exe", EXECUTABLE) if windows else (EXECUTABLE,)


def _venv_script_dirs(windows: bool) -> tuple[str, ...]:
    # A venv keeps its scripts in Scripts\ on Windows and bin/ on Linux and macOS; MSYS-style
    # venvs on Windows use bin/ too, so both are tried there.
    return ("Scripts", "bin") if windows else ("bin",)


def candidates_in(location: Path, windows: bool) -> list[Path]:
    """The executables a Backend Location may mean: the file itself, or NAME in the folder,
    in its venv script folder (the venv) or in .venv's (the clone)."""
    if location.is_file():
        return [location]
    folders = [location]
    folders += [location / d for d in _venv_script_dirs(windows)]
    folders += [location / ".venv" / d for d in _venv_script_dirs(windows)]
    return [folder / name for folder in folders for name in executable_names(windows)]


def is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def recorded_executable(record_file: Path) -> Path | None:
    """The executable build_addon.py recorded, when the record is well formed (the file ships
    in a zip: read as untrusted, size checked first) and names an absolute path."""
    try:
        if record_file.stat().st_size > MAX_RECORD_BYTES:
            return None
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = record.get("backend") if isinstance(record, dict) else None
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else None


def locate(
    location: str = "",
    path_env: str | None = None,
    record_file: Path | None = None,
    windows: bool = sys.platform == "win32",
) -> Located:
    """The first runnable backend: Backend Location, then PATH (`path_env`, default the
    process's PATH), then the build's record (`record_file`, default the add-on's)."""
    looked_in: list[str] = []
    if location.strip():
        folder = Path(os.path.expanduser(location.strip()))
        looked_in.append(f"{SOURCE_LOCATION} {folder}")
        for candidate in candidates_in(folder, windows):
            if is_executable(candidate):
                return Located(candidate, SOURCE_LOCATION, tuple(looked_in))
    on_path = shutil.which(EXECUTABLE, path=path_env)
    looked_in.append(SOURCE_PATH)
    if on_path:
        return Located(Path(on_path), SOURCE_PATH, tuple(looked_in))
    recorded = recorded_executable(RECORD_FILE if record_file is None else record_file)
    if recorded is not None:
        looked_in.append(f"{SOURCE_RECORDED} ({recorded})")
        if is_executable(recorded):
            return Located(recorded, SOURCE_RECORDED, tuple(looked_in))
    return Located(None, "", tuple(looked_in))


def not_found_message(located: Located) -> str:
    return f"The backend ({EXECUTABLE}) was not found; looked in: {', '.join(located.looked_in)}."


def read_version(executable: Path, timeout_s: float = VERSION_TIMEOUT_S) -> str:
    """`videoscene-backend --version`'s line, or why it could not be read."""
    try:
        done = subprocess.run(
            [str(executable), "--version"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"version unknown ({type(exc).__name__})"
    lines = (done.stdout or done.stderr).strip().splitlines()
    if done.returncode != 0 or not lines:
        return f"version unknown (exit code {done.returncode})"
    return lines[-1][:200]


class VersionCache:
    """Versions by executable, read on a thread of their own (the preferences draw must not
    wait ~2 s for the backend's imports); re-read when the file changes."""

    def __init__(self) -> None:
        self._versions: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def get(self, executable: Path) -> str | None:
        """The version, or None while it is being read (started on the first call)."""
        try:
            key = (str(executable), executable.stat().st_mtime_ns)
        except OSError:
            return None
        with self._lock:
            if key in self._versions:
                return self._versions[key] or None
            self._versions[key] = ""  # being read
        threading.Thread(target=self._read, args=(key, executable), daemon=True).start()
        return None

    def _read(self, key: tuple[str, int], executable: Path) -> None:
        version = read_version(executable)
        with self._lock:
            self._versions[key] = version

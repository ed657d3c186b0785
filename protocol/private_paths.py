"""Folders and files of one user: created 0700/0600, refused when another user owns them or can
read them, logs opened without following links. Shared by the backend and the add-on (which
writes scenes and its backend's log under its output folder).

POSIX only: on Windows the per-user folders (%LOCALAPPDATA%) are private by their ACLs, which
Python's os.stat does not report, so the checks there are a no-op.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from .errors import ErrorCode, VideoSceneError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows (no symlink planting in a profile)


def user_cache_dir(app: str = "videoscene") -> Path:
    """The user's own cache folder for `app`, the platform's convention (as platformdirs has it:
    $XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA%\\app\\Cache
    on Windows). Written here because Blender's Python has no platformdirs and the add-on
    bundles only pyzmq; the backend and the add-on share this one rule."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / app / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / app
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # XDG: relative = unset
    return base / app


def default_output_dir() -> Path:
    """VIDEOSCENE_OUTPUT if set, else <user cache>/output: the backend's results and the
    add-on's scenes and backend log. Never a shared folder such as /tmp."""
    if os.environ.get("VIDEOSCENE_OUTPUT"):
        return Path(os.environ["VIDEOSCENE_OUTPUT"])
    return user_cache_dir() / "output"


def check_private_dir(path: Path, what: str) -> None:
    """A folder of ours that no one else may enter: it (and a link to it) owned by us, and
    mode 0700 (a looser folder of ours is tightened: we own it, so that is ours to decide)."""
    if os.name != "posix":
        return
    for info in (os.lstat(path), os.stat(path)):
        if info.st_uid != os.getuid():
            raise VideoSceneError(
                ErrorCode.UNSAFE_PATH,
                f"The {what} {path} belongs to another user (uid {info.st_uid}).",
                "Choose a folder of your own (another user may have made this one first).",
            )
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise VideoSceneError(
            ErrorCode.UNSAFE_PATH, f"The {what} {path} is not a folder.", "Choose a folder."
        )
    if info.st_mode & 0o077:
        os.chmod(path, PRIVATE_DIR_MODE)


def make_private_dir(path: Path, what: str) -> Path:
    """Create (0700, parents as needed) or accept a folder of ours; refuse one someone else
    made."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    check_private_dir(path, what)
    return path


def check_secret_file(path: Path) -> None:
    """Secret keys must not be readable by group or others."""
    if os.name != "posix":
        return
    info = os.stat(path)
    if info.st_mode & 0o077:
        raise VideoSceneError(
            ErrorCode.UNSAFE_PATH,
            f"The secret key {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}).",
            f"Run: chmod 600 {path}  (and treat the key as leaked: make a new one with keygen)",
        )


def open_private(path: Path, flags: int) -> int:
    """os.open with mode 0600 that never follows a link planted at `path`."""
    try:
        return os.open(path, flags | _NOFOLLOW, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise VideoSceneError(
            ErrorCode.UNSAFE_PATH,
            f"Cannot open {path}: {exc.strerror or exc} (a link there is never followed).",
            "Remove whatever is at that path, or choose another output folder.",
        ) from exc


def open_log(path: Path):
    """A log file for appending (binary), 0600, never through a link."""
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab")


def write_private_text(path: Path, text: str) -> None:
    """Write a file 0600 (an existing file is truncated and its mode reset), never via a link."""
    descriptor = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    if os.name == "posix":
        os.chmod(path, PRIVATE_FILE_MODE, follow_symlinks=False)

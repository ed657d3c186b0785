"""The files a handler writes on a replica, mirrored into the job's folder on the front end.

GPU boxes need not share a file system with the front end, so a replica sends what is new or
changed in its work folder before each call it forwards (and once more at the end); the front
end writes it under the job's partial folder, where the single-box service would have found it.
"""

from __future__ import annotations

import os
from pathlib import Path

from videoscene_protocol.errors import ErrorCode, VideoSceneError

FileStamp = tuple[int, int]  # (size, mtime_ns)


def changed_files(work_dir: Path, sent: dict[str, FileStamp]) -> dict[str, bytes]:
    """Files under work_dir (relative POSIX names -> bytes) that changed since `sent`, which is
    updated in place."""
    changed: dict[str, bytes] = {}
    for path in sorted(work_dir.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        stat = path.stat()
        name = path.relative_to(work_dir).as_posix()
        stamp = (stat.st_size, stat.st_mtime_ns)
        if sent.get(name) != stamp:
            changed[name] = path.read_bytes()
            sent[name] = stamp
    return changed


def write_files(work_dir: Path, files: dict[str, bytes]) -> None:
    """Write files named by a replica under work_dir; a name that would leave it is refused."""
    root = work_dir.resolve()
    for name, data in files.items():
        target = (root / name).resolve()
        if (
            not isinstance(name, str)
            or not name
            or os.path.isabs(name)
            or not target.is_relative_to(root)
            or target == root
        ):
            raise VideoSceneError(
                ErrorCode.INTERNAL,
                f"A replica sent a file named {name!r}, which is outside the job's folder.",
                "This is a backend bug; the replica's log has the handler that wrote it.",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.part")
        temporary.write_bytes(data)
        os.replace(temporary, target)

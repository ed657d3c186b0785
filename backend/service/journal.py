"""What survives a crash: a small record per queued or running job, the start-up clean-up that
reads them back, and the lock that keeps two backends off one output folder.

jobs/.submitted/<id>.json is written (atomically: a temporary file renamed into place) when a
job is accepted, rewritten when it starts and removed once the job's own folder is published.
Whatever is left at start-up belongs to a job a crash or kill interrupted: it becomes an
`interrupted` failure record, so a client fetching it learns what happened; the frames a render
finished before the crash (frame_store's files) are published with it, everything else in its
work folder is dropped. Orphan work folders (jobs/.<id>.partial) are removed at the same time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import is_valid_id

from ..pipeline import frame_store
from . import results

log = logging.getLogger("videoscene.backend")

JOURNAL_DIR = ".submitted"
LOCK_FILE = "backend.lock"


def _journal_dir(output_dir: Path) -> Path:
    return results.jobs_root(output_dir) / JOURNAL_DIR


def _entry(output_dir: Path, job_id: str) -> Path:
    results.job_path(output_dir, job_id)  # the id check, as for every path built from an id
    return _journal_dir(output_dir) / f"{job_id}.json"


def record_submitted(
    output_dir: Path, job_id: str, kind: str, state: str = "queued", owner: str = ""
) -> None:
    """Write (or rewrite) the job's journal entry atomically."""
    entry = _entry(output_dir, job_id)
    entry.parent.mkdir(parents=True, exist_ok=True)
    temporary = entry.with_name(entry.name + ".tmp")
    temporary.write_text(
        json.dumps(
            {"job_id": job_id, "kind": kind, "state": state, "owner": owner, "time": time.time()}
        )
    )
    os.replace(temporary, entry)


def forget(output_dir: Path, job_id: str) -> None:
    _entry(output_dir, job_id).unlink(missing_ok=True)


def interrupted_error(state: str) -> VideoSceneError:
    when = "while it ran" if state == "running" else "before it started"
    return VideoSceneError(
        ErrorCode.INTERRUPTED,
        f"The backend stopped {when} (a crash, a kill or a shutdown).",
        "Submit the job again; finished jobs are not affected.",
    )


@dataclass
class Recovery:
    interrupted: list[str] = field(default_factory=list)
    partials_removed: int = 0


def recover(output_dir: Path) -> Recovery:
    """Start-up clean-up (no job runs yet): remove orphan work folders, turn journal entries
    into `interrupted` records. Names that are not ours are left alone."""
    report = Recovery()
    journal = _journal_dir(output_dir)
    for path in sorted(journal.iterdir()) if journal.is_dir() else ():
        job_id = path.name.removesuffix(".json")
        if path.name.endswith(".json.tmp"):  # a write the crash cut short
            path.unlink()
            continue
        if not path.name.endswith(".json") or not is_valid_id(job_id):
            continue
        try:
            entry = json.loads(path.read_text())
            kind, state = str(entry.get("kind", "")), str(entry.get("state", "queued"))
            owner = str(entry.get("owner", ""))
        except (OSError, ValueError, AttributeError):
            kind, state, owner = "", "queued", ""
        if results.read_record(output_dir, job_id) is None:
            _keep_only_frames(results.partial_dir(output_dir, job_id))
            error = interrupted_error(state)
            results.write_failure(output_dir, job_id, kind, error, "failed", owner=owner)
            report.interrupted.append(job_id)
        path.unlink()
    root = results.jobs_root(output_dir)
    for path in sorted(root.iterdir()):
        if results.is_partial_name(path.name) and is_valid_id(path.name[1 : -len(".partial")]):
            results.remove_path(path)
            report.partials_removed += 1
    return report


def _keep_only_frames(work_dir: Path) -> None:
    """Empty an interrupted job's work folder except the frames it finished (frames.json names
    how many are complete; a half-written frame is a .tmp file, dropped with the rest)."""
    if work_dir.is_symlink() or not work_dir.is_dir():
        results.remove_path(work_dir)
        return
    keep = {frame_store.MANIFEST, frame_store.PATH_CAMERAS, *frame_store.FRAME_KINDS}
    has_frames = (work_dir / frame_store.MANIFEST).is_file()
    for path in work_dir.iterdir():
        if not has_frames or path.name not in keep or path.is_symlink():
            results.remove_path(path)
        elif path.is_dir():
            for leftover in path.glob("*.tmp"):
                leftover.unlink()


class OutputFolderLock:
    """An exclusive, advisory lock on <output>/backend.lock for the service's lifetime: a second
    backend on the same folder would clean up the first one's live jobs at its start-up. The
    operating system drops the lock when the process dies, however it dies."""

    def __init__(self, output_dir: Path) -> None:
        self.path = Path(output_dir) / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the lock's lifetime)
        try:
            _lock(handle)
        except OSError as exc:
            handle.close()
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"Another backend is already using the output folder {self.path.parent}.",
                "Stop that backend, or start this one with another --output-dir.",
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None


def _lock(handle: IO[str]) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

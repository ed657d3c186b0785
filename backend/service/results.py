"""Job results on disk: written atomically to <output>/jobs/<id>/, read back by fetch.

Every path here is built by job_path(), which accepts only wire-valid ids (ID_PATTERN) and then
resolves the path and checks that it is a direct child of <output>/jobs: the wire check keeps
hostile ids out, this one keeps out anything that slipped past it (a symlink planted in the
folder, a caller inside the process). Nothing is created, renamed or removed before that check.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import ID_RULE, is_valid_buffer_name, is_valid_id

from ..pipeline.contract import JobOutput

RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
PARTIAL_SUFFIX = ".partial"


def jobs_root(output_dir: Path) -> Path:
    return Path(output_dir) / "jobs"


def job_path(output_dir: Path, job_id: str, pattern: str = "{}") -> Path:
    """jobs/<pattern.format(job_id)>, refused unless job_id is a valid id and the resolved path
    is a direct child of the (resolved) jobs folder."""
    if not is_valid_id(job_id):
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE, f"{job_id!r:.80} is not a valid job id.", f"Use {ID_RULE}."
        )
    root = jobs_root(output_dir).resolve()
    path = root / pattern.format(job_id)  # a link here is replaced, never followed, when written
    if path.resolve().parent != root:
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            f"The folder of job {job_id} resolves outside {root}.",
            "Remove the link that points out of the output folder's jobs/ directory.",
        )
    return path


def partial_dir(output_dir: Path, job_id: str) -> Path:
    return job_path(output_dir, job_id, ".{}" + PARTIAL_SUFFIX)


def final_dir(output_dir: Path, job_id: str) -> Path:
    return job_path(output_dir, job_id)


def is_partial_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def remove_path(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a folder tree; nothing when absent."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _publish(partial: Path, final: Path) -> None:
    """Rename the finished folder into place: readers see all of it or nothing."""
    remove_path(final)
    os.replace(partial, final)


def _fresh_partial(output_dir: Path, job_id: str) -> Path:
    partial = partial_dir(output_dir, job_id)
    partial.mkdir(parents=True, exist_ok=True)
    return partial


def _checked_name(name: str, what: str) -> str:
    if not is_valid_buffer_name(name):
        raise VideoSceneError(
            ErrorCode.INTERNAL,
            f"A job output {what} is named {name!r:.80}, which is no plain file name.",
            "This is a backend bug; the backend log has the traceback.",
        )
    return name


def write_result(
    output_dir: Path, job_id: str, kind: str, output: JobOutput, owner: str = ""
) -> dict[str, Any]:
    """Publish a finished job; returns its record (what read_record gives back). `owner`: who
    may fetch it (server.py's ownership rule)."""
    partial = _fresh_partial(output_dir, job_id)
    buffers = []
    for name, array in output.arrays.items():
        file_name = f"{_checked_name(name, 'array')}.npy"
        np.save(partial / file_name, np.ascontiguousarray(array), allow_pickle=False)
        buffers.append({"name": name, "kind": "array", "file": file_name})
    files = [_checked_name(name, "file") for name in output.files]
    for name, blob in output.blobs.items():
        file_name = name if name in files else f"blob-{_checked_name(name, 'blob')}"
        if not (partial / file_name).exists():
            (partial / file_name).write_bytes(bytes(blob))
        buffers.append({"name": name, "kind": "blob", "file": file_name})
    record = {
        "job_id": job_id,
        "kind": kind,
        "state": "done",
        "owner": owner,
        "meta": output.meta,
        "files": files,
        "buffers": buffers,
    }
    # allow_nan=False: a NaN in meta fails the job here instead of making it unsendable later
    (partial / RESULT_FILE).write_text(json.dumps(record, indent=1, allow_nan=False))
    final = final_dir(output_dir, job_id)
    _publish(partial, final)
    return {**record, "job_dir": str(final)}


def failure_record(
    job_id: str, kind: str, error: VideoSceneError, state: str, owner: str = ""
) -> dict[str, Any]:
    return {"job_id": job_id, "kind": kind, "state": state, "owner": owner, **error.to_dict()}


def write_failure(
    output_dir: Path, job_id: str, kind: str, error: VideoSceneError, state: str, owner: str = ""
) -> dict[str, Any]:
    """Publish a failed, cancelled or interrupted job; returns its record."""
    partial = _fresh_partial(output_dir, job_id)
    (partial / RESULT_FILE).unlink(missing_ok=True)  # a result whose publishing failed
    record = failure_record(job_id, kind, error, state, owner)
    (partial / ERROR_FILE).write_text(json.dumps(record, indent=1))
    final = final_dir(output_dir, job_id)
    _publish(partial, final)
    return {**record, "job_dir": str(final)}


def remove_old_jobs(output_dir: Path, keep_days: float, keep: set[str]) -> int:
    """The retention policy: finished jobs' folders whose record is older than keep_days go
    (jobs in `keep`, the ones in memory and active, stay). Returns how many were removed."""
    if not keep_days:
        return 0
    cutoff = time.time() - keep_days * 86400
    removed = 0
    for folder in jobs_root(output_dir).iterdir():
        if not is_valid_id(folder.name) or folder.name in keep or folder.is_symlink():
            continue
        records = [folder / name for name in (RESULT_FILE, ERROR_FILE) if (folder / name).is_file()]
        if records and max(path.stat().st_mtime for path in records) < cutoff:
            remove_path(folder)
            removed += 1
    return removed


def read_record(output_dir: Path, job_id: str) -> dict | None:
    """The stored record of a job, or None when the job is unknown (or the id invalid).
    A damaged record reads as a failure that says so, never as an exception."""
    if not is_valid_id(job_id):
        return None
    folder = final_dir(output_dir, job_id)
    for name in (RESULT_FILE, ERROR_FILE):
        path = folder / name
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or record.get("job_id") != job_id:
                raise ValueError("it belongs to another job or is no JSON object")
        except (OSError, ValueError) as exc:
            record = failure_record(job_id, "", damaged_error(folder, exc), "failed")
        record["job_dir"] = str(folder)
        return record
    return None


def damaged_error(folder: Path | str, exc: Exception) -> VideoSceneError:
    return VideoSceneError(
        ErrorCode.INTERNAL,
        f"The stored record in {folder} is damaged: {exc}",
        "Something changed the job's folder; submit the job again.",
    )


def load_buffers(record: dict) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    """The arrays (memory-mapped) and blobs a done record lists; each file must lie inside the
    job's folder."""
    folder = Path(record["job_dir"]).resolve()
    arrays, blobs = {}, {}
    for buffer in record.get("buffers", []):
        path = (folder / buffer["file"]).resolve()
        if path.parent != folder:
            raise damaged_error(folder, ValueError(f"buffer file {buffer['file']!r} is outside it"))
        if buffer["kind"] == "array":
            arrays[buffer["name"]] = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            blobs[buffer["name"]] = path.read_bytes()
    return arrays, blobs

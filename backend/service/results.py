"""Job results on disk: written atomically to <output>/jobs/<id>/, read back by fetch."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from videoscene_protocol.errors import VideoSceneError

from ..pipeline.contract import JobOutput

RESULT_FILE = "result.json"
ERROR_FILE = "error.json"


def partial_dir(output_dir: Path, job_id: str) -> Path:
    return output_dir / "jobs" / f".{job_id}.partial"


def final_dir(output_dir: Path, job_id: str) -> Path:
    return output_dir / "jobs" / job_id


def _publish(partial: Path, final: Path) -> None:
    """Rename the finished folder into place: readers see all of it or nothing."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)


def write_result(output_dir: Path, job_id: str, kind: str, output: JobOutput) -> Path:
    partial = partial_dir(output_dir, job_id)
    partial.mkdir(parents=True, exist_ok=True)
    buffers = []
    for name, array in output.arrays.items():
        np.save(partial / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        buffers.append({"name": name, "kind": "array", "file": f"{name}.npy"})
    for name, blob in output.blobs.items():
        file_name = name if name in output.files else f"blob-{name}"
        if not (partial / file_name).exists():
            (partial / file_name).write_bytes(bytes(blob))
        buffers.append({"name": name, "kind": "blob", "file": file_name})
    record = {
        "job_id": job_id,
        "kind": kind,
        "state": "done",
        "meta": output.meta,
        "files": output.files,
        "buffers": buffers,
    }
    (partial / RESULT_FILE).write_text(json.dumps(record, indent=1))
    final = final_dir(output_dir, job_id)
    _publish(partial, final)
    return final


def write_failure(
    output_dir: Path, job_id: str, kind: str, error: VideoSceneError, state: str
) -> Path:
    partial = partial_dir(output_dir, job_id)
    partial.mkdir(parents=True, exist_ok=True)
    (partial / ERROR_FILE).write_text(
        json.dumps({"job_id": job_id, "kind": kind, "state": state, **error.to_dict()}, indent=1)
    )
    final = final_dir(output_dir, job_id)
    _publish(partial, final)
    return final


def read_record(output_dir: Path, job_id: str) -> dict | None:
    """The stored result or failure record of a job, or None when the job is unknown."""
    if not job_id or "/" in job_id or job_id.startswith("."):
        return None
    folder = final_dir(output_dir, job_id)
    for name in (RESULT_FILE, ERROR_FILE):
        path = folder / name
        if path.is_file():
            record = json.loads(path.read_text())
            record["job_dir"] = str(folder)
            return record
    return None


def load_buffers(record: dict) -> tuple[dict[str, np.ndarray], dict[str, bytes]]:
    folder = Path(record["job_dir"])
    arrays, blobs = {}, {}
    for buffer in record.get("buffers", []):
        path = folder / buffer["file"]
        if buffer["kind"] == "array":
            arrays[buffer["name"]] = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            blobs[buffer["name"]] = path.read_bytes()
    return arrays, blobs

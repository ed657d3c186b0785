"""Job handlers the pool tests register on the replicas by import path (this folder is put on
the replicas' PYTHONPATH). They run in the replica's process, so they leave evidence in files."""

from __future__ import annotations

import os
import time
from pathlib import Path

from videoscene_backend.pipeline.contract import JobOutput
from videoscene_protocol.errors import VideoSceneError


def slow_job(ctx, request) -> JobOutput:
    """Reports progress until the file params["until"] exists (or params["seconds"] pass),
    checking for cancellation between steps; a cancellation it sees leaves
    <folder of until>/cancelled-<job id> holding the replica's pid."""
    until = Path(request.params["until"])
    deadline = time.monotonic() + float(request.params.get("seconds", 60))
    step = 0
    while not until.exists() and time.monotonic() < deadline:
        ctx.progress("render", min(step / 100, 1.0), f"step {step} pid {os.getpid()}")
        try:
            ctx.check_cancelled()
        except VideoSceneError:
            (until.parent / f"cancelled-{ctx.job_id}").write_text(str(os.getpid()))
            raise
        time.sleep(0.05)
        step += 1
    (ctx.work_dir / "note.txt").write_text(f"{step} steps")
    return JobOutput(meta={"steps": step, "pid": os.getpid()}, files=["note.txt"])

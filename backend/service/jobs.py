"""A job as the front end tracks it, the JobContext its handler sees, and how a failure becomes
the job's record.

State changes go through claim()/settle() under one lock: the socket loop (cancel, shutdown)
and the executor's threads (start, finish) race for them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videoscene_protocol.errors import ErrorCode, VideoSceneError

from ..pipeline.contract import JobRequest
from . import journal, results

if TYPE_CHECKING:
    from ..models import ModelCache
    from ..scene.store import SceneStore

log = logging.getLogger("videoscene.backend")

# (event, job, payload) for the socket loop: "progress", "frames_ready" and "finished" of a job;
# "reply" and "weights_checked" answer short requests (job None).
Outbox = queue.Queue[tuple[str, "Job | None", Any]]
MAX_WATCHERS = 32
ACTIVE = ("queued", "running")
_STATE_LOCK = threading.Lock()


@dataclass
class Job:
    job_id: str
    kind: str
    request: JobRequest
    # Clients that get the job's progress and result: the submitter and every fetcher since.
    watchers: dict[bytes, None] = field(default_factory=dict)
    state: str = "queued"  # queued | running | done | failed | cancelled
    stage: str = ""
    fraction: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)
    shutting_down: bool = False  # cancelled by the service stopping, not by a client
    submitted: float = field(default_factory=time.time)
    started: float = 0.0  # time.perf_counter() when its context was made
    owner: str = ""  # who submitted it: a client key (z85) or security.LOCAL_OWNER
    timed_out: bool = False  # stopped by the service's wall-time limit (budgets.py)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def claim(self, expected: str, new: str) -> bool:
        """Move from `expected` to `new` state, unless another thread moved the job first."""
        with _STATE_LOCK:
            if self.state != expected:
                return False
            self.state = new
            return True

    def settle(self, final: str) -> bool:
        """Move an active job to its final state; False when it had already ended."""
        with _STATE_LOCK:
            if self.state not in ACTIVE:
                return False
            self.state = final
            return True

    def watch(self, identity: bytes) -> None:
        self.watchers.pop(identity, None)
        self.watchers[identity] = None
        while len(self.watchers) > MAX_WATCHERS:  # the oldest fetcher makes room
            del self.watchers[next(iter(self.watchers))]


class JobContextImpl:
    """The JobContext a handler sees (backend/pipeline/contract.py). Its public methods are
    what a pool replica forwards to the front end (service/pool/executor.py)."""

    def __init__(
        self,
        job: Job,
        work_dir: Path,
        models: ModelCache,
        scenes: SceneStore,
        checkpoints_dir: Path,
        outbox: Outbox,
        disk_check: Callable[[], None] | None = None,
    ) -> None:
        self.job_id = job.job_id
        self._disk_check = disk_check
        self.work_dir = work_dir
        self.jobs_dir = work_dir.parent  # work_dir is jobs/.<id>.partial
        self.models = models
        self.scenes = scenes
        self.checkpoints_dir = checkpoints_dir
        self._outbox = outbox
        self._job = job
        self._logged_stage = ("", -1)

    def progress(self, stage: str, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self._job.stage, self._job.fraction = stage, fraction
        self._outbox.put(
            ("progress", self._job, {"stage": stage, "fraction": fraction, "message": message})
        )
        quarter = int(fraction * 4)
        if (stage, quarter) != self._logged_stage:
            self._logged_stage = (stage, quarter)
            log.info("job %s %-7s %3d%% %s", self.job_id[:8], stage, round(fraction * 100), message)

    def check_cancelled(self) -> None:
        if self._job.cancel.is_set():
            raise VideoSceneError(ErrorCode.CANCELLED, f"Job {self.job_id} was cancelled.")

    def frames_ready(self, event: dict[str, Any]) -> None:
        """A window's frames are on disk: announce them, then check the disk still has the
        reserve the server keeps (a full disk stops the job here, its frames stay fetchable)."""
        self._outbox.put(("frames_ready", self._job, event))
        if self._disk_check is not None:
            self._disk_check()


def store_failure(output_dir: Path, job: Job, error: VideoSceneError) -> dict[str, Any]:
    """Publish the job's failure record and drop its journal entry; if the disk refuses, the
    record still reaches the watchers from memory."""
    try:
        record = results.write_failure(
            output_dir, job.job_id, job.kind, error, job.state, owner=job.owner
        )
    except Exception as exc:
        log.error("job %s: could not store its failure record: %s", job.job_id, exc)
        record = results.failure_record(job.job_id, job.kind, error, job.state, job.owner)
    forget_safely(output_dir, job.job_id)
    return record


def forget_safely(output_dir: Path, job_id: str) -> None:
    try:
        journal.forget(output_dir, job_id)
    except Exception as exc:
        log.error("job %s: could not remove its journal entry: %s", job_id, exc)


def as_error(exc: BaseException, job_id: str) -> VideoSceneError:
    if isinstance(exc, VideoSceneError):
        return exc
    text = str(exc)
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return VideoSceneError(
            ErrorCode.OUT_OF_MEMORY,
            f"The GPU ran out of memory: {text.splitlines()[0] if text else type(exc).__name__}",
            "Release models (Release GPU), close other GPU programs, or choose memory_mode 'low' or 'lowest'.",
        )
    log.error("job %s: unexpected error:\n%s", job_id, "".join(traceback.format_exception(exc)))
    return VideoSceneError(
        ErrorCode.INTERNAL,
        f"{type(exc).__name__}: {text}",
        "This is a backend bug; the backend log has the traceback.",
    )

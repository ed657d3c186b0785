"""Jobs and the worker thread that runs them, one at a time, plus its supervision.

The worker hands everything it has to say (progress, the finished job's record) to the socket
loop through the outbox queue; it never touches the socket. Whatever a handler raises becomes
the job's failure record. Should the thread still die (a BaseException such as SystemExit, or
a bug outside a job), the socket loop notices through revive(), fails the job it held and starts
a fresh thread on the same queue.
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

from ..pipeline.contract import JobOutput, JobRequest
from . import journal, results

if TYPE_CHECKING:
    from ..models import ModelCache
    from ..scene.store import SceneStore

log = logging.getLogger("videoscene.backend")

Outbox = queue.Queue[tuple[str, "Job", Any]]
MAX_WATCHERS = 32
_STATE_LOCK = threading.Lock()  # state changes race between the loop and the worker


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

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def claim(self, expected: str, new: str) -> bool:
        """Move from `expected` to `new` state, unless another thread moved the job first."""
        with _STATE_LOCK:
            if self.state != expected:
                return False
            self.state = new
            return True

    def watch(self, identity: bytes) -> None:
        self.watchers.pop(identity, None)
        self.watchers[identity] = None
        while len(self.watchers) > MAX_WATCHERS:  # the oldest fetcher makes room
            del self.watchers[next(iter(self.watchers))]


@dataclass
class Services:
    """What the worker shares with the rest of the backend."""

    output_dir: Path
    checkpoints_dir: Path
    models: ModelCache
    scenes: SceneStore
    outbox: Outbox


class JobContextImpl:
    """The JobContext a handler sees (backend/pipeline/contract.py)."""

    def __init__(self, services: Services, job: Job) -> None:
        self.job_id = job.job_id
        self.work_dir = results.partial_dir(services.output_dir, job.job_id)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.models = services.models
        self.scenes = services.scenes
        self.checkpoints_dir = services.checkpoints_dir
        self._outbox = services.outbox
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


class Worker:
    def __init__(self, services: Services, handlers: dict[str, Callable]) -> None:
        self._services = services
        self._handlers = handlers
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.current: Job | None = None
        self.restarts = 0
        self.last_death = ""

    # ---- called from the socket loop -------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="videoscene-worker", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def put(self, job: Job) -> None:
        self._queue.put(job)

    def revive(self) -> Job | None:
        """Restart a dead worker thread; returns the job it died holding (to be failed)."""
        if self._thread is None or self.alive or self._stopping:
            return None
        job, self.current = self.current, None
        self.restarts += 1
        log.error(
            "the worker thread died (%s) holding job %s; restarting it (restart %d)",
            self.last_death or "no exception recorded",
            job.job_id if job else "none",
            self.restarts,
        )
        self.start()
        return job

    def stop(self, timeout_s: float) -> bool:
        """Let the running job end (the caller has cancelled it) and join the thread."""
        self._stopping = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.alive

    # ---- the worker thread ---------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                if not job.claim("queued", "running"):  # cancelled or interrupted meanwhile
                    continue
                self.current = job
                self._run(job)
                self.current = None
        except BaseException as exc:  # recorded for revive(); the thread then ends
            self.last_death = f"{type(exc).__name__}: {exc}"
            raise

    def _run(self, job: Job) -> None:
        services = self._services
        started = time.perf_counter()
        log.info("job %s running: %s", job.job_id, job.kind)
        try:
            journal.record_submitted(services.output_dir, job.job_id, job.kind, "running")
            output: JobOutput = self._handlers[job.kind](JobContextImpl(services, job), job.request)
            record = results.write_result(services.output_dir, job.job_id, job.kind, output)
            job.claim("running", "done")
            forget_safely(services.output_dir, job.job_id)
            log.info("job %s done in %.1f s", job.job_id, time.perf_counter() - started)
        except Exception as exc:  # every failure becomes a record the client can read
            error = as_error(exc, job.job_id)
            if job.shutting_down and error.code == ErrorCode.CANCELLED:
                error = journal.interrupted_error("running")
            job.claim("running", "cancelled" if error.code == ErrorCode.CANCELLED else "failed")
            record = store_failure(services.output_dir, job, error)
            log.warning("job %s %s: %s", job.job_id, job.state, error)
        job.request = JobRequest(job.job_id, job.kind, {})  # drop the inputs' memory
        services.outbox.put(("finished", job, record))


def store_failure(output_dir: Path, job: Job, error: VideoSceneError) -> dict[str, Any]:
    """Publish the job's failure record and drop its journal entry; if the disk refuses, the
    record still reaches the watchers from memory."""
    try:
        record = results.write_failure(output_dir, job.job_id, job.kind, error, job.state)
    except Exception as exc:
        log.error("job %s: could not store its failure record: %s", job.job_id, exc)
        record = results.failure_record(job.job_id, job.kind, error, job.state)
    forget_safely(output_dir, job.job_id)
    return record


def forget_safely(output_dir: Path, job_id: str) -> None:
    try:
        journal.forget(output_dir, job_id)
    except Exception as exc:
        log.error("job %s: could not remove its journal entry: %s", job_id, exc)


def as_error(exc: Exception, job_id: str) -> VideoSceneError:
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

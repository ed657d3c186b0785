"""Where the service's jobs run: the seam between the front end and the workers.

The service (server.py) owns the socket, the job table and the results on disk. An executor owns
where and how handlers run: `LocalExecutor` is one worker thread in this process (the single-box
service); `service/pool/` runs them on Ray Serve replicas. An executor reports back only through
the JobHost: the job's front-end JobContext (progress and whatever else the handler publishes)
and `finish_job`, which writes the result atomically and tells the client.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from videoscene_protocol.errors import ErrorCode, VideoSceneError

from ..models import ModelCache
from ..pipeline.contract import JobContext, JobOutput
from ..scene.store import SceneStore

if TYPE_CHECKING:
    from .jobs import Job

log = logging.getLogger("videoscene.backend")

ReleaseReply = Callable[[list[str]], None]
# How long a stop waits for the running job to notice its cancellation. Jobs check at least
# every few hundred ms of CPU work (docs/protocol.md, "Cancel latency"), so this is ample; a job
# still running after it (one GPU kernel, a loaded machine) is abandoned: the process exits
# within 2 s of SIGTERM and the next start-up records the job as interrupted.
STOP_JOIN_S = 1.5


class JobHost(Protocol):
    """What the service offers an executor."""

    models: ModelCache
    scenes: SceneStore

    def job_context(self, job: Job) -> JobContext:
        """A fresh front-end context: work_dir is the job's (emptied) partial folder."""
        ...

    def finish_job(self, job: Job, output: JobOutput | None, error: BaseException | None) -> None:
        """Write the job's result (output) or failure (error) atomically and send it. Never
        raises; a job that has already ended (cancelled, interrupted) is left as it is."""
        ...


class JobExecutor(Protocol):
    def start(self, host: JobHost) -> None: ...

    def submit(self, job: Job) -> None:
        """Queue a job (state "queued"); set job.state = "running" when it starts."""
        ...

    def cancel(self, job: Job) -> None:
        """Called after job.cancel was set, for a queued or running job."""
        ...

    def release_models(self, reply: ReleaseReply) -> None:
        """Free every worker's models; reply (from any thread) with the released keys."""
        ...

    def describe(self) -> dict[str, Any]:
        """Status fields, without blocking: "device", "models", "scenes" (+ executor extras)."""
        ...

    def supervise(self) -> None:
        """Called by the socket loop about every 50 ms: replace dead workers, finishing the job
        each one held through the host."""
        ...

    def stop(self) -> None:
        """End the workers (the service has cancelled their jobs) and join their threads."""
        ...


class LocalExecutor:
    """One worker thread in this process, running jobs one at a time in submission order.

    Whatever a handler raises becomes its job's failure. Should the thread itself die (a
    BaseException such as SystemExit, or a bug outside a job), supervise() fails the job it
    held and starts a fresh thread on the same queue.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._host: JobHost | None = None
        self._device = "cpu"
        self._stopping = False
        self._current: Job | None = None
        self.restarts = 0
        self.last_death = ""

    def start(self, host: JobHost) -> None:
        self._host = host
        self._device = device_name()
        self._start_thread()

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def cancel(self, job: Job) -> None:
        """Nothing to route: the handler checks job.cancel between steps."""

    def release_models(self, reply: ReleaseReply) -> None:
        assert self._host is not None
        reply(self._host.models.release())

    def describe(self) -> dict[str, Any]:
        assert self._host is not None
        return {
            "device": self._device,
            "models": self._host.models.loaded(),
            "scenes": self._host.scenes.ids(),
            "worker": {"alive": self.alive, "restarts": self.restarts},
        }

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def supervise(self) -> None:
        if self._thread is None or self.alive or self._stopping:
            return
        assert self._host is not None
        job, self._current = self._current, None
        self.restarts += 1
        log.error(
            "the worker thread died (%s) holding job %s; restarting it (restart %d)",
            self.last_death or "no exception recorded",
            job.job_id if job else "none",
            self.restarts,
        )
        self._start_thread()
        if job is not None:
            self._host.finish_job(
                job,
                None,
                VideoSceneError(
                    ErrorCode.INTERNAL,
                    f"The worker thread died while running this job ({self.last_death}).",
                    "This is a backend bug; the backend log says more. The worker was "
                    "restarted: submit the job again.",
                ),
            )

    def stop(self) -> None:
        self._stopping = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(STOP_JOIN_S)
            if self._thread.is_alive():
                log.warning("the running job did not stop within %.1f s", STOP_JOIN_S)

    # ---- the worker thread ---------------------------------------------------------------
    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._work, name="videoscene-worker", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                if not job.claim("queued", "running"):  # cancelled or interrupted meanwhile
                    continue
                self._current = job
                self._run(job)
                self._current = None
        except BaseException as exc:  # recorded for supervise(); the thread then ends
            self.last_death = f"{type(exc).__name__}: {exc}"
            raise

    def _run(self, job: Job) -> None:
        from ..pipeline.registry import HANDLERS

        assert self._host is not None
        log.info("job %s running: %s", job.job_id, job.kind)
        try:
            output = HANDLERS[job.kind](self._host.job_context(job), job.request)
        except Exception as exc:  # every failure becomes a record the client can read
            self._host.finish_job(job, None, exc)
        else:
            self._host.finish_job(job, output, None)


def device_name() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"

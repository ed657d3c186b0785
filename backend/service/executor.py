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

from ..models import ModelCache
from ..pipeline.contract import JobContext, JobOutput
from ..scene.store import SceneStore

if TYPE_CHECKING:
    from .server import Job

log = logging.getLogger("videoscene.backend")

ReleaseReply = Callable[[list[str]], None]


class JobHost(Protocol):
    """What the service offers an executor."""

    models: ModelCache
    scenes: SceneStore

    def job_context(self, job: Job) -> JobContext:
        """A fresh front-end context: work_dir is the job's (emptied) partial folder."""
        ...

    def finish_job(self, job: Job, output: JobOutput | None, error: BaseException | None) -> None:
        """Write the job's result (output) or failure (error) atomically and send it."""
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

    def stop(self) -> None: ...


class LocalExecutor:
    """One worker thread in this process, running jobs one at a time in submission order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="videoscene-worker", daemon=True)
        self._host: JobHost | None = None

    def start(self, host: JobHost) -> None:
        self._host = host
        self._thread.start()

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
            "device": device_name(),
            "models": self._host.models.loaded(),
            "scenes": self._host.scenes.ids(),
        }

    def stop(self) -> None:
        self._queue.put(None)

    def _work(self) -> None:
        from ..pipeline.registry import HANDLERS

        assert self._host is not None
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.state != "queued":
                continue
            job.state = "running"
            log.info("job %s running: %s", job.job_id[:8], job.kind)
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

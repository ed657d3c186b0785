"""The socket loop; jobs run on an executor (executor.py: one local worker thread by default).

Only the loop thread touches the ROUTER socket. The executor runs the jobs and hands progress
and results to the loop through a thread-safe queue, so heartbeats, status and cancel are
answered while a long job runs.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from videoscene_protocol import PROTOCOL_VERSION, versions
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import DEFAULT_MAX_MESSAGE_BYTES, Message, decode, encode

from ..models import ModelCache
from ..pipeline import frame_store
from ..pipeline.contract import JobOutput, JobRequest
from ..scene.store import SceneStore
from . import results
from .executor import JobExecutor, LocalExecutor
from .security import configure_security

log = logging.getLogger("videoscene.backend")

HEARTBEAT_INTERVAL_S = 1.0
CLIENT_FORGET_S = 60.0
CLIENT_MESSAGE_TYPES = (
    "hello",
    "submit",
    "cancel",
    "fetch",
    "status",
    "release_models",
    "heartbeat",
    "check_weights",
    "fetch_frames",
)
# One weights check at a time: it reads file headers and builds models on the meta device.
_WEIGHTS_CHECK_LOCK = threading.Lock()


@dataclass
class Job:
    job_id: str
    kind: str
    owner: bytes
    request: JobRequest
    state: str = "queued"
    stage: str = ""
    fraction: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.time)
    started: float = 0.0  # time.perf_counter() when its context was made


class _Context:
    """The JobContext a handler sees (backend/pipeline/contract.py)."""

    def __init__(self, service: BackendService, job: Job) -> None:
        self.job_id = job.job_id
        self.work_dir = results.partial_dir(service.output_dir, job.job_id)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.models = service.models
        self.scenes = service.scenes
        self.checkpoints_dir = service.checkpoints_dir
        self._service = service
        self._job = job
        self._logged_stage = ("", -1)

    def progress(self, stage: str, fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        self._job.stage, self._job.fraction = stage, fraction
        self._service._outbox.put(
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
        self._service._outbox.put(("frames_ready", self._job, event))


class BackendService:
    def __init__(
        self,
        bind: str = "tcp://127.0.0.1:5557",
        output_dir: Path | str = "videoscene-output",
        checkpoints_dir: Path | str = "checkpoints",
        keys_dir: Path | str | None = None,
        max_queue: int = 16,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        executor: JobExecutor | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        (self.output_dir / "jobs").mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir = Path(checkpoints_dir)
        self.max_queue = max_queue
        self.max_message_bytes = max_message_bytes
        self.models = ModelCache()
        self.scenes = SceneStore()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._executor: JobExecutor = executor or LocalExecutor()
        self._outbox: queue.Queue[tuple[str, Job | bytes, Any]] = queue.Queue()
        self._clients: dict[bytes, float] = {}
        self._stop = threading.Event()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 500)
        self._socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self._authenticator = configure_security(self._context, self._socket, bind, keys_dir)
        self._socket.bind(bind)
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    # ---- lifecycle -----------------------------------------------------------------------
    def serve_forever(self) -> None:
        self._executor.start(self)
        log.info(
            "VideoScene backend %s listening on %s, results in %s",
            PROTOCOL_VERSION,
            self.address,
            self.output_dir,
        )
        last_heartbeat = 0.0
        try:
            while not self._stop.is_set():
                if self._socket.poll(50, zmq.POLLIN):
                    self._receive_all()
                self._flush_outbox()
                now = time.monotonic()
                if now - last_heartbeat >= HEARTBEAT_INTERVAL_S:
                    self._heartbeat(now)
                    last_heartbeat = now
        finally:
            self._executor.stop()
            self._socket.close()
            if self._authenticator is not None:
                self._authenticator.stop()
            self._context.term()
            log.info("backend stopped")

    def stop(self) -> None:
        self._stop.set()

    # ---- socket side ---------------------------------------------------------------------
    def _send(self, identity: bytes, message: Message) -> None:
        try:
            self._socket.send_multipart([identity, *encode(message)], copy=False)
        except zmq.ZMQError as exc:  # an unroutable client is dropped silently by ROUTER
            log.warning("could not send %s to a client: %s", message.type, exc)

    def _reply_error(
        self, identity: bytes, error: VideoSceneError, reply_to: str | None, job_id: str | None
    ) -> None:
        body = error.to_dict()
        if reply_to and not job_id:
            body["reply_to"] = reply_to
        self._send(identity, Message("error", body=body, job_id=job_id))

    def _receive_all(self) -> None:
        while True:
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity, payload = frames[0].bytes, frames[1:]
            self._clients[identity] = time.monotonic()
            try:
                message = decode(payload, self.max_message_bytes)
                self._handle(identity, message)
            except VideoSceneError as error:
                msg_id, job_id = _peek_ids(payload)
                log.warning("rejected a message: %s", error)
                self._reply_error(identity, error, msg_id, job_id)
            except Exception as exc:  # never let one message take the service down
                log.exception("error while handling a message")
                self._reply_error(
                    identity,
                    VideoSceneError(ErrorCode.INTERNAL, str(exc), "See the backend log."),
                    None,
                    None,
                )

    def _handle(self, identity: bytes, message: Message) -> None:
        handler = {
            "hello": self._on_hello,
            "submit": self._on_submit,
            "cancel": self._on_cancel,
            "fetch": self._on_fetch,
            "status": self._on_status,
            "release_models": self._on_release,
            "check_weights": self._on_check_weights,
            "heartbeat": lambda identity, message: None,
            "fetch_frames": self._on_fetch_frames,
        }.get(message.type)
        if handler is None:
            raise VideoSceneError(
                ErrorCode.UNKNOWN_TYPE,
                f"{message.type!r} is not a message a client sends.",
                f"Clients send: {', '.join(CLIENT_MESSAGE_TYPES)}.",
            )
        handler(identity, message)

    def _on_hello(self, identity: bytes, message: Message) -> None:
        from ..pipeline.registry import HANDLERS

        self._send(
            identity,
            Message(
                "welcome",
                body={
                    "reply_to": message.msg_id,
                    "version": PROTOCOL_VERSION,
                    "server": "videoscene-backend",
                    "device": self._executor.describe()["device"],
                    "job_kinds": sorted(HANDLERS),
                    "max_message_bytes": self.max_message_bytes,
                    "max_queue": self.max_queue,
                    "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
                    "max_fetch_frames": frame_store.MAX_FETCH_FRAMES,
                },
            ),
        )

    def _on_submit(self, identity: bytes, message: Message) -> None:
        from ..pipeline.registry import HANDLERS

        job_id, body = message.job_id, message.body
        if not job_id:
            raise VideoSceneError(
                ErrorCode.BAD_MESSAGE, "submit needs a job_id.", "Use a fresh uuid4 hex."
            )
        kind, params = body.get("kind"), body.get("params", {})
        if kind not in HANDLERS:
            raise VideoSceneError(
                ErrorCode.UNKNOWN_JOB_KIND,
                f"Unknown job kind {kind!r}.",
                f"Use one of: {', '.join(sorted(HANDLERS))}.",
            )
        if not isinstance(params, dict):
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS, "params must be a JSON object.", "Send params as an object."
            )
        versions.check_client(kind, message.version)  # e.g. render_video streams since 1.1
        if job_id in self._jobs or results.read_record(self.output_dir, job_id):
            raise VideoSceneError(
                ErrorCode.BAD_MESSAGE,
                f"Job id {job_id} is already in use.",
                "Use a fresh uuid4 hex.",
            )
        waiting = sum(1 for job in self._jobs.values() if job.state == "queued")
        if waiting >= self.max_queue:
            raise VideoSceneError(
                ErrorCode.QUEUE_FULL,
                f"{waiting} jobs are already waiting.",
                "Wait for running jobs to finish, or cancel some.",
            )
        request = JobRequest(job_id, kind, params, dict(message.arrays), dict(message.blobs))
        job = Job(job_id, kind, identity, request)
        self._jobs[job_id] = job
        self._executor.submit(job)
        log.info("job %s queued: %s (%d waiting)", job_id[:8], kind, waiting + 1)
        self._send(
            identity,
            Message("accepted", body={"state": "queued", "position": waiting}, job_id=job_id),
        )

    def _on_cancel(self, identity: bytes, message: Message) -> None:
        job = self._jobs.get(message.job_id or "")
        if job is None or job.state not in ("queued", "running"):
            raise VideoSceneError(
                ErrorCode.UNKNOWN_JOB,
                f"No queued or running job {message.job_id!r}.",
                "It may have finished already; fetch it.",
            )
        job.cancel.set()
        self._executor.cancel(job)
        if job.state == "queued":
            job.state = "cancelled"
            results.write_failure(
                self.output_dir,
                job.job_id,
                job.kind,
                VideoSceneError(ErrorCode.CANCELLED, "Cancelled before it started."),
                "cancelled",
            )
            self._send(
                identity, Message("cancelled", body={"state": "cancelled"}, job_id=job.job_id)
            )
        else:
            self._send(
                identity, Message("accepted", body={"state": "cancelling"}, job_id=job.job_id)
            )
        log.info("job %s cancel requested", job.job_id[:8])

    def _on_fetch(self, identity: bytes, message: Message) -> None:
        job_id = message.job_id or ""
        job = self._jobs.get(job_id)
        if job is not None and job.state in ("queued", "running"):
            job.owner = identity  # a reconnected client takes over progress and the result
            self._send(identity, Message("accepted", body={"state": job.state}, job_id=job_id))
            return
        record = results.read_record(self.output_dir, job_id)
        if record is None:
            raise VideoSceneError(
                ErrorCode.UNKNOWN_JOB,
                f"Unknown job {job_id!r}.",
                "Check the id; results live in the backend's output folder under jobs/.",
            )
        self._send_record(identity, record)

    def _send_record(self, identity: bytes, record: dict) -> None:
        job_id = record["job_id"]
        if record.get("state") == "done":
            arrays, blobs = results.load_buffers(record)
            body = {
                "kind": record["kind"],
                "meta": record["meta"],
                "files": record["files"],
                "job_dir": record["job_dir"],
            }
            self._send(
                identity, Message("result", body=body, job_id=job_id, arrays=arrays, blobs=blobs)
            )
        elif record.get("state") == "cancelled":
            self._send(identity, Message("cancelled", body={"state": "cancelled"}, job_id=job_id))
        else:
            self._send(
                identity,
                Message(
                    "error",
                    body={k: record.get(k, "") for k in ("code", "message", "hint")},
                    job_id=job_id,
                ),
            )

    def _on_fetch_frames(self, identity: bytes, message: Message) -> None:
        """A range of a render job's frames, read from its folder (while it runs, after it
        finished, after a restart). Errors answer the request (reply_to), not the job."""
        try:
            job_id, kind, first, count = frame_store.check_range_request(
                message.job_id, message.body
            )
            frames = frame_store.read_range(
                self.output_dir, job_id, kind, first, count, self.max_message_bytes // 2
            )
        except VideoSceneError as error:
            self._reply_error(identity, error, message.msg_id, None)
            return
        manifest = frames.manifest
        body = {
            "reply_to": message.msg_id,
            "kind": kind,
            "first": first,
            "count": len(frames.frames),
            "ready": manifest.ready,
            "total": manifest.count,
            "width": manifest.width,
            "height": manifest.height,
            "format": frame_store.FORMAT,
        }
        blobs = {str(first + i): data for i, data in enumerate(frames.frames)}
        self._send(identity, Message("frames", body=body, job_id=job_id, blobs=blobs))

    def _on_status(self, identity: bytes, message: Message) -> None:
        running = next((job for job in self._jobs.values() if job.state == "running"), None)
        body = {
            "reply_to": message.msg_id,
            "version": PROTOCOL_VERSION,
            "queue": [job.job_id for job in self._jobs.values() if job.state == "queued"],
            "running": None
            if running is None
            else {
                "job_id": running.job_id,
                "kind": running.kind,
                "stage": running.stage,
                "fraction": running.fraction,
            },
            **self._executor.describe(),  # device, models, scenes (+ the pool's replicas)
            "output_dir": str(self.output_dir),
        }
        self._send(identity, Message("status_reply", body=body))

    def _on_release(self, identity: bytes, message: Message) -> None:
        def reply(released: list[str]) -> None:  # called by the executor, from any thread
            log.info("released models: %s", released or "none loaded")
            body = {"reply_to": message.msg_id, "released": released}
            self._outbox.put(("reply", identity, Message("released", body=body)))

        self._executor.release_models(reply)

    def _on_check_weights(self, identity: bytes, message: Message) -> None:
        """Verify the installed weights (backend/check.py) off the socket loop, which keeps
        answering meanwhile; the report goes back through the outbox."""

        def run() -> None:
            from ..check import check_weights

            try:
                with _WEIGHTS_CHECK_LOCK:
                    report = check_weights(self.checkpoints_dir).to_dict()
                reply = Message("weights_report", body={"reply_to": message.msg_id, **report})
            except Exception as exc:  # a bug in the check must not go unanswered
                log.exception("the weights check failed")
                error = VideoSceneError(
                    ErrorCode.INTERNAL, f"The weights check failed: {exc}", "See the backend log."
                )
                reply = Message("error", body={**error.to_dict(), "reply_to": message.msg_id})
            self._outbox.put(("reply", identity, reply))

        threading.Thread(target=run, name="videoscene-check-weights", daemon=True).start()

    def _heartbeat(self, now: float) -> None:
        for identity, heard in list(self._clients.items()):
            if now - heard > CLIENT_FORGET_S:
                del self._clients[identity]
            else:
                self._send(identity, Message("heartbeat", body={"time": time.time()}))

    def _flush_outbox(self) -> None:
        while True:
            try:
                kind, job, payload = self._outbox.get_nowait()
            except queue.Empty:
                return
            if kind == "progress":
                self._send(job.owner, Message("progress", body=payload, job_id=job.job_id))
            elif kind == "frames_ready":
                self._send(job.owner, Message("frames_ready", body=payload, job_id=job.job_id))
            elif kind == "record":
                self._send_record(job.owner, payload)
            elif kind == "reply":  # ("reply", identity, message): a short request answered late
                self._send(job, payload)
            while len(self._jobs) > 256:  # forget old finished jobs; their records stay on disk
                oldest = next(iter(self._jobs.values()))
                if oldest.state in ("queued", "running"):
                    break
                self._jobs.popitem(last=False)

    # ---- executor side (JobHost, executor.py) ---------------------------------------------
    def job_context(self, job: Job) -> _Context:
        partial = results.partial_dir(self.output_dir, job.job_id)
        if partial.exists():  # a retried attempt starts from an empty folder
            shutil.rmtree(partial)
        job.started = time.perf_counter()
        return _Context(self, job)

    def finish_job(self, job: Job, output: JobOutput | None, error: BaseException | None) -> None:
        if output is not None:
            results.write_result(self.output_dir, job.job_id, job.kind, output)
            job.state = "done"
            log.info("job %s done in %.1f s", job.job_id[:8], time.perf_counter() - job.started)
        else:
            failure = _as_error(error or RuntimeError("the job ended without a result"))
            job.state = "cancelled" if failure.code == ErrorCode.CANCELLED else "failed"
            results.write_failure(self.output_dir, job.job_id, job.kind, failure, job.state)
            log.warning("job %s %s: %s", job.job_id[:8], job.state, failure)
        job.request = JobRequest(job.job_id, job.kind, {})  # drop the inputs' memory
        record = results.read_record(self.output_dir, job.job_id)
        self._outbox.put(("record", job, record))


def _as_error(exc: BaseException) -> VideoSceneError:
    if isinstance(exc, VideoSceneError):
        return exc
    text = str(exc)
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return VideoSceneError(
            ErrorCode.OUT_OF_MEMORY,
            f"The GPU ran out of memory: {text.splitlines()[0] if text else type(exc).__name__}",
            "Release models (Release GPU), close other GPU programs, or choose memory_mode 'low' or 'lowest'.",
        )
    log.error("unexpected error:\n%s", "".join(traceback.format_exception(exc)))
    return VideoSceneError(
        ErrorCode.INTERNAL,
        f"{type(exc).__name__}: {text}",
        "This is a backend bug; the backend log has the traceback.",
    )


def _peek_ids(payload: list[Any]) -> tuple[str | None, str | None]:
    """Best effort: the msg_id and job_id of a message that failed to decode, to address the error."""
    try:
        envelope = json.loads(
            bytes(payload[0].buffer if hasattr(payload[0], "buffer") else payload[0])[: 1 << 20]
        )
        msg_id, job_id = envelope.get("msg_id"), envelope.get("job_id")
        return (
            msg_id if isinstance(msg_id, str) else None,
            job_id if isinstance(job_id, str) else None,
        )
    except Exception:
        return None, None


@dataclass
class ServiceHandle:
    service: BackendService
    thread: threading.Thread

    @property
    def address(self) -> str:
        return self.service.address

    def stop(self, timeout_s: float = 10.0) -> None:
        self.service.stop()
        self.thread.join(timeout_s)


def start_in_thread(
    output_dir: Path | str,
    checkpoints_dir: Path | str | None = None,
    bind: str = "tcp://127.0.0.1:*",
    **kwargs: Any,
) -> ServiceHandle:
    """Run a service in a background thread (scripts, the headless `run` command, tests)."""
    from ..paths import checkpoints_dir as default_checkpoints

    service = BackendService(bind, output_dir, checkpoints_dir or default_checkpoints(), **kwargs)
    thread = threading.Thread(target=service.serve_forever, name="videoscene-service", daemon=True)
    thread.start()
    return ServiceHandle(service, thread)

"""The socket loop: one ROUTER socket, a dispatch table of client messages, replies addressed to
the request they answer, heartbeats; jobs run on an executor (executor.py: one supervised local
worker thread by default, Ray Serve replicas with `serve --pool`), which the loop supervises.

Only the loop thread touches the socket. No message can stop the loop: each one is handled
inside its own try and answered (an error with a code, addressed by `reply_to` and `job_id`
whenever they can be read), and an error anywhere in the loop is logged and the loop goes on.
Replies: every answer to a client message carries body.reply_to = that message's msg_id; every
message about a job carries job_id; progress and results go to every client watching the job
(the submitter and everyone who fetched it while it ran).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from videoscene_protocol import PROTOCOL_VERSION, versions
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import JOB_SPECS
from videoscene_protocol.private_paths import make_private_dir
from videoscene_protocol.wire import (
    CLIENT_FORGET_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_MISSES,
    Message,
    decode,
    encode,
    peek_ids,
)

from ..models import ModelCache
from ..pipeline import frame_store
from ..pipeline.contract import JobOutput, JobRequest

# Imported with the module, not at the first message: the handlers import torch, which takes
# seconds the socket loop must not spend while clients wait for heartbeats.
from ..pipeline.registry import HANDLERS
from ..scene.store import SceneStore
from . import budgets, journal, results
from .budgets import Budgets
from .executor import STOP_JOIN_S, JobExecutor, LocalExecutor
from .jobs import Job, JobContextImpl, Outbox, as_error, forget_safely, store_failure
from .security import LOCAL_OWNER, check_bound, configure_security

log = logging.getLogger("videoscene.backend")

POLL_MS = 50
RECEIVE_BUDGET_S = 0.1  # then outbox, supervision and heartbeats get their turn
MAX_REMEMBERED_JOBS = 256
MAX_REMEMBERED_SCENES = 4096  # scene owners (the stores keep far fewer scenes)  # finished jobs kept in memory; their records stay on disk
# Messages libzmq may hold per peer before the loop reads them (a peer's pipe blocks beyond).
# libzmq delivers a multipart message only once complete and bounds each frame (MAXMSGSIZE),
# not the frame count: docs/protocol.md, "Threat model", says what that leaves open.
RECEIVE_HWM = 8
RETENTION_EVERY_S = 3600.0  # and once at start-up
MAX_WEIGHTS_CHECK_WAITERS = 64  # check_weights requests answered by the check in flight

MessageHandler = Callable[[bytes, Message], None]


class BackendService:
    def __init__(
        self,
        bind: str = "tcp://127.0.0.1:5557",
        output_dir: Path | str = "videoscene-output",
        checkpoints_dir: Path | str = "checkpoints",
        keys_dir: Path | str | None = None,
        max_queue: int = 16,
        max_queue_per_client: int = 4,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        executor: JobExecutor | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.output_dir = make_private_dir(Path(output_dir), "output folder")
        make_private_dir(results.jobs_root(self.output_dir), "jobs folder")
        self.checkpoints_dir = Path(checkpoints_dir)
        self.max_queue = max_queue
        self.max_queue_per_client = max_queue_per_client
        self.budgets = budgets or Budgets()
        self._last_retention = float("-inf")  # the first loop turn removes old jobs
        self.max_message_bytes = max_message_bytes
        self._folder_lock = journal.OutputFolderLock(self.output_dir)
        self._folder_lock.acquire()
        try:
            self._recover()
            self.models = ModelCache()
            self.scenes = SceneStore()
            self._jobs: OrderedDict[str, Job] = OrderedDict()
            self._outbox: Outbox = queue.Queue()
            self._executor: JobExecutor = executor or LocalExecutor()
            self._clients: dict[bytes, float] = {}
            self._owners: dict[bytes, str] = {}  # connection -> the key (or local user) behind it
            # scene id -> the owner of the job that made it (set from the executor's threads)
            self._scene_owners: OrderedDict[str, str] = OrderedDict()
            self._scene_lock = threading.Lock()
            self._stop = threading.Event()
            self.abandoned_jobs: list[str] = []  # still running when the stop gave up on them
            self._weights_check: threading.Thread | None = None
            # True from a check's start until the loop has sent its report. Kept by the loop,
            # not read from the thread's liveness: the thread outlives its report for a moment.
            self._weights_check_running = False
            self._weights_check_waiters: list[tuple[bytes, str]] = []
            self._open_socket(bind, keys_dir)
        except BaseException:
            self._folder_lock.release()
            if executor is not None:
                executor.stop()  # a pool already deployed its replicas
            raise
        self._handlers: dict[str, MessageHandler] = {
            "hello": self._on_hello,
            "submit": self._on_submit,
            "cancel": self._on_cancel,
            "fetch": self._on_fetch,
            "status": self._on_status,
            "release_models": self._on_release,
            "check_weights": self._on_check_weights,
            "heartbeat": self._on_heartbeat,
            "fetch_frames": self._on_fetch_frames,
        }

    def _recover(self) -> None:
        recovery = journal.recover(self.output_dir)
        if recovery.interrupted or recovery.partials_removed:
            log.warning(
                "start-up: %d job(s) interrupted by the last stop (%s), %d orphan work folder(s) removed",
                len(recovery.interrupted),
                ", ".join(recovery.interrupted) or "-",
                recovery.partials_removed,
            )

    def _open_socket(self, bind: str, keys_dir: Path | str | None) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 500)
        self._socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)  # per frame
        self._socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)  # complete messages queued per peer
        self._access = None
        try:
            self._access = configure_security(self._context, self._socket, bind, keys_dir)
            try:
                self._socket.bind(bind)
            except zmq.ZMQError as exc:
                raise VideoSceneError(
                    ErrorCode.BAD_BIND,
                    f"Cannot listen on {bind}: {exc}.",
                    "Another backend may already be listening there; choose another --bind.",
                ) from exc
            self.address = check_bound(self._socket, keyed=self._access is not None)
        except BaseException:
            self._close_socket()
            raise

    def _close_socket(self) -> None:
        self._socket.close(linger=500)
        if self._access is not None:
            self._access.stop()  # joins the authenticator's thread
        self._context.term()

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
                try:
                    if self._socket.poll(POLL_MS, zmq.POLLIN):
                        self._receive_some()
                    self._flush_outbox()
                    self._executor.supervise()
                    if self._access is not None:
                        self._access.reload_if_due()
                    self._enforce_budgets()
                    now = time.monotonic()
                    if now - last_heartbeat >= HEARTBEAT_INTERVAL_S:
                        self._heartbeat(now)
                        last_heartbeat = now
                except Exception:
                    log.exception("error in the socket loop; it goes on")
                    self._stop.wait(POLL_MS / 1000)  # no busy loop should the error repeat
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    def _shutdown(self) -> None:
        """Interrupt the jobs, stop the executor, tell the watchers, close the socket, unlock."""
        try:
            for job in list(self._jobs.values()):
                self._interrupt(job)
            self._executor.stop()
            for job in list(self._jobs.values()):
                self._abandon(job)
            if self._weights_check is not None:
                self._weights_check.join(STOP_JOIN_S)
            self._flush_outbox()
        except Exception:
            log.exception("error while stopping")
        finally:
            self._close_socket()
            self._folder_lock.release()
            log.info("backend stopped")

    def _interrupt(self, job: Job) -> None:
        if job.claim("queued", "failed"):
            record = store_failure(self.output_dir, job, journal.interrupted_error("queued"))
            self._outbox.put(("finished", job, record))
        elif job.state == "running":
            job.shutting_down = True
            job.cancel.set()
            self._executor.cancel(job)

    def _abandon(self, job: Job) -> None:
        """A job still running when the executor's stop gave up on it: its watchers hear
        `interrupted` now, and settling it makes the worker's late finish_job a no-op, so its
        work folder and journal entry stay for the next start-up to record as interrupted
        (keeping the frames it finished) rather than being half-published as the process exits."""
        if job.settle("failed"):
            self.abandoned_jobs.append(job.job_id)
            log.warning("job %s abandoned by the stop; the next start records it", job.job_id)
            record = results.failure_record(
                job.job_id, job.kind, journal.interrupted_error("running"), "failed"
            )
            self._outbox.put(("finished", job, record))

    # ---- receiving -----------------------------------------------------------------------
    def _receive_some(self) -> None:
        deadline = time.monotonic() + RECEIVE_BUDGET_S
        while time.monotonic() < deadline:
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = frames[0].bytes
            self._clients[identity] = time.monotonic()
            if self._admit(identity, frames):
                self._handle(identity, frames[1:])

    def _admit(self, identity: bytes, frames: list[Any]) -> bool:
        """Who sent it: the CurveZMQ client key (ZAP's User-Id, its z85 public key) or, on a
        keyless loopback/ipc backend, the local user. A key revoked since it connected is
        answered not_authorized."""
        if self._access is None:
            self._owners[identity] = LOCAL_OWNER
            return True
        owner = frames[-1].get("User-Id")
        if owner in self._access.allowed:
            self._owners[identity] = owner
            return True
        self._owners.pop(identity, None)
        reply_to, job_id = peek_ids(frames[1:])
        error = VideoSceneError(
            ErrorCode.NOT_AUTHORIZED,
            "This client key is no longer authorized.",
            "Ask the server's admin for a new key pair (`videoscene-backend keygen --client`).",
        )
        self._send_error(identity, error, reply_to, job_id)
        return False

    def _owner(self, identity: bytes) -> str:
        return self._owners.get(identity, "")

    def _sees_all(self, identity: bytes) -> bool:
        """Keyless (a private local backend) or an admin key: every job; else one's own."""
        return self._access is None or self._owner(identity) in self._access.admins

    def _shows_paths(self, identity: bytes) -> bool:
        """Server paths and node details: for the server's own user (keyless) or an admin."""
        return self._sees_all(identity)

    def _may_see(self, identity: bytes, owner: str) -> bool:
        return self._sees_all(identity) or (bool(owner) and owner == self._owner(identity))

    def _require_visible(self, identity: bytes, job_id: str) -> None:
        """Another client's job reads exactly as an unknown one (no oracle for its ids)."""
        if self._sees_all(identity):
            return
        job = self._jobs.get(job_id)
        if job is not None:
            owner = job.owner
        else:
            record = results.read_record(self.output_dir, job_id)
            owner = "" if record is None else str(record.get("owner", ""))
        if not self._may_see(identity, owner):
            raise VideoSceneError(
                ErrorCode.UNKNOWN_JOB,
                f"Unknown job {job_id}.",
                "Check the id: a client sees only the jobs it submitted.",
            )

    def _check_scene_owner(self, identity: bytes, kind: str, params: dict[str, Any]) -> None:
        """A scene belongs to the client whose job made it: another client's render of it reads
        as an unknown scene, and its id cannot be taken over by a load_scene."""
        scene_id = params.get("scene_id")
        if not isinstance(scene_id, str) or self._sees_all(identity):
            return
        with self._scene_lock:
            owner = self._scene_owners.get(scene_id)
        if owner is None or owner == self._owner(identity):
            return
        if kind == "load_scene":
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"The scene id {scene_id} is in use by another client.",
                "Load the scene with scene_id null (a new id), or a fresh id.",
            )
        raise VideoSceneError(
            ErrorCode.UNKNOWN_SCENE,
            f"Unknown scene {scene_id}.",
            "Send the scene again with load_scene (scene_id null gives a new id).",
        )

    def _remember_scene_owner(self, job: Job, output: JobOutput) -> None:
        scene_id = output.meta.get("scene_id") if isinstance(output.meta, dict) else None
        if not isinstance(scene_id, str):
            return
        with self._scene_lock:
            self._scene_owners[scene_id] = job.owner
            self._scene_owners.move_to_end(scene_id)
            while len(self._scene_owners) > MAX_REMEMBERED_SCENES:
                self._scene_owners.popitem(last=False)

    def _check_queued_inputs(self, message: Message) -> None:
        """The waiting jobs' inputs stay in memory until they run: bounded in bytes too."""
        limit = self.budgets.max_queued_input_mib * budgets.MIB
        if not limit:
            return
        held = sum(
            budgets.input_bytes(job.request.arrays, job.request.blobs)
            for job in self._jobs.values()
            if job.state == "queued"
        )
        if held + budgets.input_bytes(message.arrays, message.blobs) > limit:
            raise VideoSceneError(
                ErrorCode.QUEUE_FULL,
                f"The waiting jobs already hold {held / budgets.MIB:,.0f} MiB of inputs "
                f"(the server keeps at most {limit / budgets.MIB:,.0f} MiB).",
                "Submit again once some have started; the admin sets --max-queued-input-mib.",
            )

    def _check_quota(self, owner: str) -> None:
        """Each client (key) may hold at most max_queue_per_client waiting or running jobs, so
        one artist cannot fill the queue for everyone."""
        if self._access is None:
            return  # a keyless backend has one user
        held = sum(1 for job in self._jobs.values() if job.active and job.owner == owner)
        if held >= self.max_queue_per_client:
            raise VideoSceneError(
                ErrorCode.QUOTA_EXCEEDED,
                f"This client already has {held} jobs queued or running "
                f"(the server allows {self.max_queue_per_client} per client).",
                "Wait for one to finish or cancel one; the server's admin sets "
                "--max-queue-per-client.",
            )

    def _handle(self, identity: bytes, payload: list[Any]) -> None:
        """Decode, dispatch, and answer any failure with an addressed error."""
        message = None
        try:
            message = decode(payload, self.max_message_bytes)
            handler = self._handlers.get(message.type)
            if handler is None:
                raise VideoSceneError(
                    ErrorCode.UNKNOWN_TYPE,
                    f"{message.type!r} is not a message a client sends.",
                    f"Clients send: {', '.join(self._handlers)}.",
                )
            handler(identity, message)
        except Exception as exc:
            reply_to, job_id = (message.msg_id, message.job_id) if message else peek_ids(payload)
            if isinstance(exc, VideoSceneError):
                error = exc
                log.warning("refused a message (job %s): %s", job_id, error)
            else:
                log.exception("error while handling a message (job %s)", job_id)
                error = VideoSceneError(
                    ErrorCode.INTERNAL,
                    f"{type(exc).__name__}: {exc}",
                    "This is a backend bug; the backend log has the traceback.",
                )
            self._send_error(identity, error, reply_to, job_id)

    # ---- sending -------------------------------------------------------------------------
    def _send(self, identity: bytes, message: Message) -> None:
        try:
            frames = encode(message)
        except VideoSceneError as error:  # e.g. a NaN in a body: a backend bug, say so
            log.error("could not encode a %s (job %s): %s", message.type, message.job_id, error)
            if message.type != "error":
                reply_to = message.body.get("reply_to")
                bug = VideoSceneError(ErrorCode.INTERNAL, error.message, "This is a backend bug.")
                self._send_error(identity, bug, reply_to, message.job_id)
            return
        try:
            self._socket.send_multipart([identity, *frames], copy=False)
        except zmq.ZMQError as exc:  # an unroutable client is dropped silently by ROUTER
            log.warning("could not send %s to a client: %s", message.type, exc)

    def _reply(
        self,
        identity: bytes,
        request: Message,
        kind: str,
        body: dict[str, Any],
        job_id: str | None = None,
    ) -> None:
        self._send(
            identity, Message(kind, body={**body, "reply_to": request.msg_id}, job_id=job_id)
        )

    def _send_error(
        self, identity: bytes, error: VideoSceneError, reply_to: str | None, job_id: str | None
    ) -> None:
        body: dict[str, Any] = error.to_dict()
        if reply_to:
            body["reply_to"] = reply_to
        self._send(identity, Message("error", body=body, job_id=job_id))

    def _record_message(self, record: dict, reply_to: str | None) -> Message:
        """The message that tells a client how a job ended: result, cancelled or error."""
        job_id = record["job_id"]
        addressed = {"reply_to": reply_to} if reply_to else {}
        state = record.get("state")
        if state == "done":
            try:
                arrays, blobs = results.load_buffers(record)
            except (OSError, ValueError, KeyError, TypeError, VideoSceneError) as exc:
                error = results.damaged_error(record["job_dir"], exc)
                record = results.failure_record(
                    job_id, str(record.get("kind", "")), error, "failed"
                )
                return Message("error", body={**_error_fields(record), **addressed}, job_id=job_id)
            body = {
                "kind": record.get("kind", ""),
                "meta": record.get("meta", {}),
                "files": record.get("files", []),
                # the folder only for a keyless (the server's own user's) backend
                "job_dir": record.get("job_dir", "") if self._access is None else "",
                **addressed,
            }
            return Message("result", body=body, job_id=job_id, arrays=arrays, blobs=blobs)
        if state == "cancelled":
            return Message("cancelled", body={"state": "cancelled", **addressed}, job_id=job_id)
        return Message("error", body={**_error_fields(record), **addressed}, job_id=job_id)

    # ---- client messages -----------------------------------------------------------------
    def _on_hello(self, identity: bytes, message: Message) -> None:
        body = {
            "version": PROTOCOL_VERSION,
            "server": "videoscene-backend",
            "device": self._executor.describe()["device"],
            "job_kinds": sorted(HANDLERS),
            "max_message_bytes": self.max_message_bytes,
            "max_queue": self.max_queue,
            "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
            "heartbeat_misses": HEARTBEAT_MISSES,
            "max_fetch_frames": frame_store.MAX_FETCH_FRAMES,
        }
        self._reply(identity, message, "welcome", body)

    def _on_submit(self, identity: bytes, message: Message) -> None:
        job_id = _required_job_id(message)
        kind, params = message.body.get("kind"), message.body.get("params", {})
        if not isinstance(kind, str) or kind not in HANDLERS:
            raise VideoSceneError(
                ErrorCode.UNKNOWN_JOB_KIND,
                f"Unknown job kind {kind!r:.80}.",
                f"Use one of: {', '.join(sorted(HANDLERS))}.",
            )
        if not isinstance(params, dict):
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS, "params must be a JSON object.", "Send params as an object."
            )
        versions.check_client(kind, message.version)  # e.g. render_video streams since 1.3
        # Refused here, before the job queues; the handler checks again (it also runs on pools).
        spec = JOB_SPECS.get(kind)
        # every product kind has a spec (test_params); test-only kinds do not
        checked = spec.validate(params) if spec is not None else params
        self.budgets.check_submit(kind, checked, message.arrays, self.output_dir)
        if job_id in self._jobs or results.read_record(self.output_dir, job_id) is not None:
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
        owner = self._owner(identity)
        self._check_scene_owner(identity, kind, params)
        self._check_quota(owner)
        self._check_queued_inputs(message)
        journal.record_submitted(self.output_dir, job_id, kind, owner=owner)
        job = Job(job_id, kind, JobRequest(job_id, kind, params, message.arrays, message.blobs))
        job.owner = owner
        job.watch(identity)
        self._jobs[job_id] = job
        self._forget_old_jobs()
        self._executor.submit(job)
        log.info("job %s queued: %s (%d waiting)", job_id, kind, waiting + 1)
        self._reply(identity, message, "accepted", {"state": "queued", "position": waiting}, job_id)

    def _on_cancel(self, identity: bytes, message: Message) -> None:
        job_id = _required_job_id(message)
        job = self._jobs.get(job_id)
        if job is None or not job.active or not self._may_see(identity, job.owner):
            raise VideoSceneError(
                ErrorCode.UNKNOWN_JOB,
                f"No queued or running job {job_id}.",
                "It may have finished already; fetch it.",
            )
        job.cancel.set()
        self._executor.cancel(job)
        if job.claim("queued", "cancelled"):
            job.request = JobRequest(job_id, job.kind, {})  # drop the inputs' memory
            error = VideoSceneError(ErrorCode.CANCELLED, "Cancelled before it started.")
            store_failure(self.output_dir, job, error)
            self._reply(identity, message, "cancelled", {"state": "cancelled"}, job_id)
            cancelled = Message("cancelled", body={"state": "cancelled"}, job_id=job_id)
            for watcher in job.watchers:
                if watcher != identity:
                    self._send(watcher, cancelled)
        else:
            self._reply(identity, message, "accepted", {"state": "cancelling"}, job_id)
        log.info("job %s cancel requested", job_id)

    def _on_fetch(self, identity: bytes, message: Message) -> None:
        """A running job gains a watcher (it keeps its others); a finished one is read from
        disk and sent to the fetching client alone."""
        job_id = _required_job_id(message)
        self._require_visible(identity, job_id)
        job = self._jobs.get(job_id)
        if job is not None and job.active:
            job.watch(identity)
            body = {"state": job.state, "stage": job.stage, "fraction": job.fraction}
            self._reply(identity, message, "accepted", body, job_id)
            return
        record = results.read_record(self.output_dir, job_id)
        if record is None:
            raise VideoSceneError(
                ErrorCode.UNKNOWN_JOB,
                f"Unknown job {job_id}.",
                "Check the id; results live in the backend's output folder under jobs/.",
            )
        self._send(identity, self._record_message(record, reply_to=message.msg_id))

    def _on_fetch_frames(self, identity: bytes, message: Message) -> None:
        """A range of a render job's frames, read from its folder (while it runs, after it
        finished, after a restart). Errors answer the request (reply_to), not the job."""
        try:
            job_id, kind, first, count = frame_store.check_range_request(
                message.job_id, message.body
            )
            self._require_visible(identity, job_id)
            folders = (
                results.final_dir(self.output_dir, job_id),
                results.partial_dir(self.output_dir, job_id),
            )
            frames = frame_store.read_range(
                folders, kind, first, count, self.max_message_bytes // 2
            )
        except VideoSceneError as error:
            self._send_error(identity, error, message.msg_id, None)
            return
        manifest = frames.manifest
        body = {
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
        self._send(
            identity,
            Message(
                "frames", body={**body, "reply_to": message.msg_id}, job_id=job_id, blobs=blobs
            ),
        )

    def _on_status(self, identity: bytes, message: Message) -> None:
        """One's own jobs (an admin key and a keyless local backend: all of them); the server's
        paths and the pool's node details only where the client is the server's own user."""
        mine = [job for job in self._jobs.values() if self._may_see(identity, job.owner)]
        running = next((job for job in mine if job.state == "running"), None)
        details = self._executor.describe()  # device, models, scenes (+ worker, or the pool)
        body = {
            "version": PROTOCOL_VERSION,
            "queue": [job.job_id for job in mine if job.state == "queued"],
            "waiting": sum(1 for job in self._jobs.values() if job.state == "queued"),
            "busy": any(job.state == "running" for job in self._jobs.values()),
            "running": None
            if running is None
            else {
                "job_id": running.job_id,
                "kind": running.kind,
                "stage": running.stage,
                "fraction": running.fraction,
            },
            **(details if self._shows_paths(identity) else public_details(details)),
        }
        if self._shows_paths(identity):
            body["output_dir"] = str(self.output_dir)
        self._reply(identity, message, "status_reply", body)

    def _on_release(self, identity: bytes, message: Message) -> None:
        def reply(released: list[str]) -> None:  # called by the executor, from any thread
            log.info("released models: %s", released or "none loaded")
            answer = Message("released", body={"released": released, "reply_to": message.msg_id})
            self._outbox.put(("reply", None, (identity, answer)))

        self._executor.release_models(reply)

    def _on_check_weights(self, identity: bytes, message: Message) -> None:
        """Verify the installed weights (backend/check.py) on a thread of its own, so the loop
        keeps answering; one check at a time, and requests arriving meanwhile share its report."""
        if len(self._weights_check_waiters) >= MAX_WEIGHTS_CHECK_WAITERS:
            raise VideoSceneError(
                ErrorCode.QUEUE_FULL,
                f"{MAX_WEIGHTS_CHECK_WAITERS} weights checks are already waiting.",
                "Wait for the report of the check in flight.",
            )
        self._weights_check_waiters.append((identity, message.msg_id))
        if not self._weights_check_running:
            self._weights_check_running = True
            self._weights_check = threading.Thread(
                target=self._check_weights, name="videoscene-check-weights", daemon=True
            )
            self._weights_check.start()

    def _check_weights(self) -> None:
        """On the check's own thread: the report (or the error) goes to the loop's outbox."""
        from ..check import check_weights

        try:
            outcome = ("weights_report", check_weights(self.checkpoints_dir).to_dict())
        except Exception as exc:  # a bug in the check must not go unanswered
            log.exception("the weights check failed")
            error = VideoSceneError(
                ErrorCode.INTERNAL, f"The weights check failed: {exc}", "See the backend log."
            )
            outcome = ("error", error.to_dict())
        self._outbox.put(("weights_checked", None, outcome))

    def _on_heartbeat(self, identity: bytes, message: Message) -> None:
        """Nothing to answer: hearing the client is the point (see _receive_some)."""

    # ---- jobs, heartbeats, supervision ---------------------------------------------------
    def _flush_outbox(self) -> None:
        while True:
            try:
                event, job, payload = self._outbox.get_nowait()
            except queue.Empty:
                return
            try:
                if event == "reply":  # a short request answered from another thread
                    self._send(*payload)
                    continue
                if event == "weights_checked":
                    self._answer_weights_check(*payload)
                    continue
                if event in ("progress", "frames_ready"):
                    message = Message(event, body=payload, job_id=job.job_id)
                else:  # "finished": the job's record
                    message = self._record_message(payload, reply_to=None)
                for identity in list(job.watchers):
                    self._send(identity, message)
            except Exception:
                log.exception("could not deliver the %s of job %s", event, job and job.job_id)

    def _answer_weights_check(self, kind: str, body: dict[str, Any]) -> None:
        waiters, self._weights_check_waiters = self._weights_check_waiters, []
        self._weights_check_running = False  # a request from now on starts the next check
        for identity, msg_id in waiters:
            self._send(identity, Message(kind, body={**body, "reply_to": msg_id}))

    def _forget_old_jobs(self) -> None:
        excess = len(self._jobs) - MAX_REMEMBERED_JOBS
        if excess > 0:
            finished = [job_id for job_id, job in self._jobs.items() if not job.active]
            for job_id in finished[:excess]:
                del self._jobs[job_id]

    def _enforce_budgets(self) -> None:
        """Stop jobs past the wall-time limit (they end as time_limit, see finish_job) and,
        hourly, remove finished jobs older than the retention limit."""
        now = time.perf_counter()
        for job in list(self._jobs.values()):
            running = job.state == "running" and job.started and not job.timed_out
            if running and self.budgets.over_time(now - job.started):
                job.timed_out = True
                job.cancel.set()
                self._executor.cancel(job)
        if time.monotonic() - self._last_retention >= RETENTION_EVERY_S:
            self._last_retention = time.monotonic()
            self._remove_old_jobs()

    def _remove_old_jobs(self) -> None:
        try:
            removed = results.remove_old_jobs(
                self.output_dir, self.budgets.keep_days, keep=set(self._jobs)
            )
        except OSError as exc:
            log.warning("could not remove old jobs: %s", exc)
            return
        if removed:
            log.info("removed %d job(s) older than %g days", removed, self.budgets.keep_days)

    def _heartbeat(self, now: float) -> None:
        beat = Message("heartbeat", body={"time": time.time()})
        for identity, heard in list(self._clients.items()):
            if now - heard > CLIENT_FORGET_S:
                del self._clients[identity]
                self._owners.pop(identity, None)
            else:
                self._send(identity, beat)

    # ---- the executor's side (JobHost, executor.py): called from its threads -----------------
    def job_context(self, job: Job) -> JobContextImpl:
        """The job starts: journalled as running, an empty work folder (a retried attempt
        starts afresh), a context whose progress reaches the job's watchers."""
        journal.record_submitted(self.output_dir, job.job_id, job.kind, "running", job.owner)
        work_dir = results.partial_dir(self.output_dir, job.job_id)
        results.remove_path(work_dir)
        work_dir.mkdir(parents=True)
        job.started = time.perf_counter()
        return JobContextImpl(
            job,
            work_dir,
            self.models,
            self.scenes,
            self.checkpoints_dir,
            self._outbox,
            disk_check=lambda: self.budgets.check_disk(self.output_dir),
        )

    def finish_job(self, job: Job, output: JobOutput | None, error: BaseException | None) -> None:
        """Publish the job's result or failure and tell its watchers; never raises. A job that
        already ended (cancelled while queued, interrupted by a stop) keeps its record."""
        if not job.active:
            return
        record = None
        try:
            if output is not None:
                try:
                    record = results.write_result(
                        self.output_dir, job.job_id, job.kind, output, owner=job.owner
                    )
                except Exception as exc:  # e.g. NaN in meta, an unsafe file name: a bug
                    error = exc
                else:
                    self._remember_scene_owner(job, output)
                    job.settle("done")
                    forget_safely(self.output_dir, job.job_id)
                    log.info("job %s done in %.1f s", job.job_id, time.perf_counter() - job.started)
            if record is None:
                failure = as_error(
                    error or RuntimeError("the job ended without a result"), job.job_id
                )
                if job.shutting_down and failure.code == ErrorCode.CANCELLED:
                    failure = journal.interrupted_error("running")
                elif job.timed_out and failure.code == ErrorCode.CANCELLED:
                    failure = self.budgets.time_limit_error(time.perf_counter() - job.started)
                job.settle("cancelled" if failure.code == ErrorCode.CANCELLED else "failed")
                record = store_failure(self.output_dir, job, failure)
                log.warning("job %s %s: %s", job.job_id, job.state, failure)
        except Exception:  # nothing above should raise; if it does, the watchers still hear
            log.exception("job %s: could not publish its outcome", job.job_id)
            job.settle("failed")
            bug = VideoSceneError(ErrorCode.INTERNAL, "The job's outcome could not be stored.")
            record = results.failure_record(job.job_id, job.kind, bug, "failed", job.owner)
        finally:
            job.request = JobRequest(job.job_id, job.kind, {})  # drop the inputs' memory
        self._outbox.put(("finished", job, record))


def _required_job_id(message: Message) -> str:
    if not message.job_id:
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            f"{message.type} needs a job_id.",
            "Give the job's id (a fresh uuid4 hex for submit).",
        )
    return message.job_id


def public_details(details: dict[str, Any]) -> dict[str, Any]:
    """What any authorized client may know of the executor: the device, the loaded models, the
    worker's health and the pool's size; not scene ids (other artists' scenes), node addresses,
    host names or process ids."""
    public: dict[str, Any] = {key: details[key] for key in ("device", "models") if key in details}
    public["scenes"] = []
    if "worker" in details:
        public["worker"] = details["worker"]
    pool = details.get("pool")
    if isinstance(pool, dict):
        public["pool"] = {
            "replicas_wanted": pool.get("replicas_wanted"),
            "replicas": len(pool.get("replicas", [])),
        }
    return public


def _error_fields(record: dict) -> dict[str, str]:
    return {key: str(record.get(key, "")) for key in ("code", "message", "hint")}


@dataclass
class ServiceHandle:
    service: BackendService
    thread: threading.Thread

    @property
    def address(self) -> str:
        return self.service.address

    def stop(self, timeout_s: float = STOP_JOIN_S + 10) -> None:
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

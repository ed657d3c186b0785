"""Timer-driven glue between Blender and the backend client.

One Session per Blender process owns the BackendClient, the jobs in flight and what to do
with their results. Nothing here blocks: `step()` polls the client once, dispatches the
events and returns whether more work is pending. bpy.app.timers calls it in Blender; tests call
it in a loop (timers never fire in the bpy module). All bpy changes happen inside step(), so
on the main thread.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bpy
import numpy as np

from . import backend_process, preferences
from ._vendor.videoscene_protocol.client import (
    BackendClient,
    ErrorEvent,
    FramesEvent,
    FramesReadyEvent,
    ProgressEvent,
    ResultEvent,
    StateEvent,
)
from ._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ._vendor.videoscene_protocol.keys import CLIENTS, generate_keys, load_client_keys
from ._vendor.videoscene_protocol.private_paths import make_private_dir
from ._vendor.videoscene_protocol.wire import is_valid_id
from .bug_report import unexpected_error

POLL_INTERVAL_S = 0.1
LOCAL_KEYS = "local-keys"
LOCAL_CLIENT = "blender"
CONNECT_SLICE_S = 0.05  # one connect attempt per step, short enough to keep the UI fluid
JOB_LABELS = {
    "build_scene": "Build",
    "load_scene": "Re-send scene",
    "render_video": "Video",
    "fit_scene": "Rebuild",
}

ResultHandler = Callable[[Any, "PendingJob"], None]
ErrorHandler = Callable[[VideoSceneError, "PendingJob"], bool]


@dataclass
class PendingJob:
    """A job we submitted (or will submit once connected) and how to finish it."""

    kind: str
    scene_name: str
    on_result: ResultHandler
    on_error: ErrorHandler | None = None  # returns True when it handled the error itself
    data: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] | None = None
    blobs: dict[str, bytes] | None = None
    # Called with the job id once sent, e.g. to receive the job's frames as they stream in.
    on_submitted: Callable[[str, PendingJob], None] | None = None


def scene_folder(output_dir: Path, scene_id: object) -> Path:
    """<output>/scenes/<id>/ for a scene id the backend sent: checked against the id character
    set before it touches a path (a rogue server's `..` or absolute id goes nowhere), made 0700."""
    if not is_valid_id(scene_id):
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            f"The backend sent an unusable scene id {str(scene_id)[:80]!r}.",
            "Scene ids are 1-64 letters, digits, '_' or '-'; the backend may not be a genuine one.",
        )
    make_private_dir(output_dir, "output folder")
    return make_private_dir(output_dir / "scenes" / scene_id, "scene folder")


def local_keys_dir(output_dir: Path) -> Path:
    """<output>/local-keys/ (0700): the local backend's own CurveZMQ pair and ours, made once."""
    keys_dir = make_private_dir(make_private_dir(output_dir, "output folder") / LOCAL_KEYS, "keys")
    if not (keys_dir / CLIENTS / f"{LOCAL_CLIENT}.key_secret").is_file():
        generate_keys(keys_dir, LOCAL_CLIENT)
    return keys_dir


def _is_loopback(address: str) -> bool:
    parts = urlsplit(address)
    if parts.scheme in ("ipc", "inproc"):
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _load_keys(prefs: preferences.VideoScenePreferences) -> dict[str, bytes]:
    """CurveZMQ keys for a remote backend, read with zmq.auth (the files keygen writes)."""
    if not prefs.server_public_key and not prefs.client_secret_key:
        return {}
    import zmq.auth

    try:
        server_public, _ = zmq.auth.load_certificate(bpy.path.abspath(prefs.server_public_key))
        client_public, client_secret = zmq.auth.load_certificate(
            bpy.path.abspath(prefs.client_secret_key)
        )
    except (OSError, ValueError) as exc:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"Could not read the CurveZMQ key files: {exc}.",
            "Set both key files in the preferences (made by 'videoscene-backend keygen DIR').",
        ) from exc
    if client_secret is None:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            "The client key pair file has no secret key.",
            "Choose the client.key_secret file, not client.key.",
        )
    return {
        "server_public_key": server_public,
        "client_public_key": client_public,
        "client_secret_key": client_secret,
    }


def connection_settings(prefs: preferences.VideoScenePreferences) -> tuple[str, dict, bool]:
    """(address, CurveZMQ keys, local?) from the preferences; starts the local backend in local
    mode. Raises VideoSceneError for configuration problems."""
    if prefs.backend_mode == "LOCAL":
        address = prefs.local_address
        if not _is_loopback(address):
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"The local backend address {address} is not a loopback address.",
                "Use tcp://127.0.0.1:PORT for a local backend, or switch to Remote.",
            )
        output_dir = preferences.output_dir(prefs)
        keys_dir = local_keys_dir(output_dir)
        backend_process.start(
            prefs.local_command,
            address,
            output_dir,
            keys_dir,
            preferences.backend_location(prefs),
        )
        # Our own backend only: it must prove it holds the key pair in our 0700 folder (CURVE
        # handshake), so another user's server squatting the port gets no photos.
        return address, load_client_keys(keys_dir, LOCAL_CLIENT), True
    address = prefs.remote_address
    if not _is_loopback(address) and not bpy.app.online_access:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"Online access is off, so the add-on will not connect to {address}.",
            "Allow online access in Preferences > System > Network, or use a loopback address.",
        )
    keys = _load_keys(prefs)
    if not keys and not _is_loopback(address):
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"Refusing to connect to {address} without the server's key: the connection would "
            "be plaintext and the server unauthenticated.",
            "Set the server public key (server.key) and your client key pair "
            "(clients/NAME.key_secret) from 'videoscene-backend keygen', or use a loopback address.",
        )
    return address, keys, False


class Session:
    def __init__(self) -> None:
        self.client: BackendClient | None = None
        self.connected = False
        self.jobs: dict[str, PendingJob] = {}  # submitted, by job id
        self.queue: list[PendingJob] = []  # waiting for the connection
        self.connect_deadline = 0.0
        self.local = False
        self.watch_process = False
        self.timer_registered = False
        # Work that must not touch bpy (e.g. writing PNGs), run off the main thread; the
        # callback runs in step() on the main thread.
        self.executor: ThreadPoolExecutor | None = None
        self.tasks: list[tuple[Future, Callable[[Any], None]]] = []
        # Render jobs whose frames are still arriving (video_stream.VideoStream), by job id;
        # a stream outlives its job's result until every announced frame is in its strips.
        self.streams: dict[str, Any] = {}

    def pending(self) -> bool:
        return bool(self.jobs or self.queue or self.tasks or self.streams)

    def fail(self, error: VideoSceneError) -> None:
        """Report an error of asynchronous work (e.g. a refused frame range)."""
        self._fail(error)

    def _drop_finished_streams(self) -> None:
        for job_id in [job_id for job_id, stream in self.streams.items() if stream.complete]:
            del self.streams[job_id]

    def run_in_background(self, work: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="videoscene")
        self.tasks.append((self.executor.submit(work), on_done))
        _state().busy = True
        ensure_timer()

    def _finish_tasks(self) -> None:
        for task in [task for task in self.tasks if task[0].done()]:
            self.tasks.remove(task)
            future, on_done = task
            try:
                on_done(future.result())
            except VideoSceneError as error:
                self._fail(error)
            except Exception as exc:  # a bug in a callback must not kill the timer
                self._fail(unexpected_error(exc, "Finishing the job"))
            _state().busy = self.pending()
            _redraw()

    # -- connection ---------------------------------------------------------------------
    def _open(self) -> None:
        prefs = preferences.get()
        address, keys, self.local = connection_settings(prefs)
        self.client = BackendClient(address, **keys)
        self.connected = False
        self.connect_deadline = time.monotonic() + prefs.start_timeout_s

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None
        self.connected = False

    def _local_exit_error(self) -> VideoSceneError | None:
        """An error when the local backend we started has exited. Once connected, only when we
        were talking to that process (another backend may already serve the address)."""
        watched = self.watch_process if self.connected else self.local
        if not watched or backend_process.is_running():
            return None
        tail = backend_process.log_tail(3).replace("\n", " | ")
        return VideoSceneError(
            ErrorCode.BACKEND_DEAD,
            f"The local backend exited (code {backend_process.exit_code()}). {tail}".strip(),
            f"See the log at {backend_process.log_path()}; check the command in the preferences.",
        )

    # -- jobs -----------------------------------------------------------------------------
    def submit(self, job: PendingJob) -> None:
        """Queue a job; the next step() sends it once the backend answers. Raises
        VideoSceneError for configuration problems (shown by the calling operator)."""
        if self.client is None:
            self._open()
        self.queue.append(job)
        state = _state()
        state.busy = True
        state.error_message = state.error_hint = state.refine_message = ""
        state.status = f"{JOB_LABELS.get(job.kind, job.kind)}: waiting for the backend"
        state.stage, state.progress = "", 0.0
        ensure_timer()

    def cancel(self) -> int:
        """Ask the backend to cancel every job in flight; drop queued ones. Returns the count."""
        count = len(self.queue)
        self.queue.clear()
        if self.client is not None:
            for job_id in list(self.jobs):
                self.client.cancel(job_id)
                count += 1
        state = _state()
        state.status = "Cancelling" if self.jobs else "Cancelled"
        state.busy = bool(self.jobs)
        return count

    def release_models(self) -> dict:
        if self.client is None or not self.connected:
            raise VideoSceneError(
                ErrorCode.BACKEND_DEAD,
                "Not connected to a backend.",
                "Nothing is loaded on the GPU until a job has run.",
            )
        return self.client.release_models(timeout_s=2.0)

    # -- the step ---------------------------------------------------------------------------
    def step(self) -> bool:
        """Poll once and handle what arrived. Returns True while jobs are pending."""
        self._finish_tasks()
        if self.client is None:
            return bool(self.tasks)
        if not self.connected and not (self.jobs or self.queue):
            return False  # nothing to send: stop trying to connect (e.g. after Cancel)
        if not self.connected and not self._try_connect():
            return self.client is not None or bool(self.tasks)
        queued, self.queue = self.queue, []
        for job in queued:
            try:
                self._send(job)
            except VideoSceneError as error:  # e.g. a message over the size limit
                self._fail(error)
        for event in self.client.poll(timeout_ms=0):
            self._dispatch(event)
            if self.client is None:
                break
        if self.client is not None and (error := self._local_exit_error()) is not None:
            self._fail_all(error)
        self._drop_finished_streams()
        _state().busy = self.pending()
        return self.pending()

    def _try_connect(self) -> bool:
        try:
            self.client.connect(timeout_s=CONNECT_SLICE_S)
        except VideoSceneError as error:
            exited = self._local_exit_error()
            if exited is not None:
                self._fail_all(exited)
            elif time.monotonic() > self.connect_deadline:
                self._fail_all(
                    VideoSceneError(
                        ErrorCode.TIMEOUT,
                        f"The backend did not answer: {error.message}",
                        error.hint or "Start the backend or check the address in the preferences.",
                    )
                )
            return False
        self.connected = True
        self.watch_process = self.local and backend_process.is_running()
        return True

    def _send(self, job: PendingJob) -> None:
        job_id = self.client.submit(job.kind, job.params, arrays=job.arrays, blobs=job.blobs)
        self.jobs[job_id] = job
        if job.on_submitted is not None:
            job.on_submitted(job_id, job)
        _state().status = f"{JOB_LABELS.get(job.kind, job.kind)}: queued"

    def _dispatch(self, event: Any) -> None:
        state = _state()
        if isinstance(event, ProgressEvent):
            job = self.jobs.get(event.job_id)
            label = JOB_LABELS.get(job.kind, job.kind) if job else "Job"
            state.stage, state.progress = event.stage, float(event.fraction)
            state.status = f"{label}: {event.stage}" + (
                f" - {event.message}" if event.message else ""
            )
        elif isinstance(event, StateEvent):
            job = self.jobs.get(event.job_id)
            if job is not None:
                state.status = f"{JOB_LABELS.get(job.kind, job.kind)}: {event.state}"
        elif isinstance(event, ResultEvent):
            job = self.jobs.pop(event.job_id, None)
            if job is None:
                return
            state.progress, state.stage = 1.0, ""
            try:
                job.on_result(event.result, job)
            except VideoSceneError as error:
                self._fail(error)
            except Exception as exc:  # a bug in a handler must not kill the timer
                label = JOB_LABELS.get(job.kind, job.kind)
                self._fail(unexpected_error(exc, f"{label}: using the result"))
            state.busy = self.pending()
        elif isinstance(event, FramesReadyEvent | FramesEvent):
            stream = self.streams.get(event.job_id)
            try:
                if stream is not None and isinstance(event, FramesReadyEvent):
                    stream.on_ready(event, self)
                elif stream is not None:
                    stream.on_frames(event, self)
            except VideoSceneError as error:
                stream.failed = True
                self._fail(error)
            except Exception as exc:  # a bug in the strips must not kill the timer
                stream.failed = True
                self._fail(unexpected_error(exc, "Video: receiving frames"))
        elif isinstance(event, ErrorEvent):
            if event.job_id is None:
                self._fail_all(event.error)
                return
            stream = self.streams.get(event.job_id)
            if stream is not None:  # frames it finished stay; the rest never come
                stream.end()
            job = self.jobs.pop(event.job_id, None)
            if job is not None and job.on_error is not None and job.on_error(event.error, job):
                return
            if event.error.code == ErrorCode.CANCELLED:
                state.status = "Cancelled"
                state.busy = self.pending()
            else:
                self._fail(event.error)
        _redraw()

    def _fail(self, error: VideoSceneError) -> None:
        state = _state()
        state.error_message = error.message
        state.error_hint = error.hint
        state.status = f"Error ({error.code.value})"
        state.busy = self.pending()
        report(error)

    def _fail_all(self, error: VideoSceneError) -> None:
        """The backend is gone: forget every job, drop the client (the next job reconnects)."""
        self.jobs.clear()
        self.queue.clear()
        self.streams.clear()  # frames already in strips stay; the backend keeps the rest
        self.close()
        self._fail(error)
        _redraw()


SESSION = Session()


def _state() -> Any:
    return bpy.context.window_manager.videoscene_state


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "SEQUENCE_EDITOR", "PREFERENCES"}:
                area.tag_redraw()


def report(error: VideoSceneError) -> None:
    """Report an asynchronous error to the user (the operator that started the job is gone)."""
    print(f"VideoScene: {error}")
    # Not registered / no context: the panel still shows the error.
    with contextlib.suppress(RuntimeError, AttributeError):
        bpy.ops.videoscene.report("EXEC_DEFAULT", level="ERROR", message=str(error))


def step() -> bool:
    """One non-blocking step of the session (what the timer calls). Tests call it in a loop."""
    return SESSION.step()


def _timer() -> float | None:
    try:
        more = SESSION.step()
    except Exception:  # never let an exception unregister the timer silently mid-job
        traceback.print_exc()
        more = SESSION.pending()
    if more:
        return POLL_INTERVAL_S
    SESSION.timer_registered = False
    return None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=POLL_INTERVAL_S, persistent=True)
    SESSION.timer_registered = True


def shutdown(stop_backend: bool) -> None:
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    SESSION.jobs.clear()
    SESSION.queue.clear()
    SESSION.streams.clear()
    SESSION.close()
    if SESSION.executor is not None:  # let file writes finish; they are short
        SESSION.executor.shutdown(wait=True)
        SESSION.executor = None
    SESSION.tasks.clear()
    if stop_backend:
        backend_process.stop()

"""The backend client: handshake, non-blocking submit/poll, cancel, fetch, dead-backend detection.

Runs inside Blender (stdlib + numpy + pyzmq). Nothing here blocks except connect(), status(),
release_models() (short, bounded), check_weights() (seconds; the add-on calls it from a worker
thread with a client of its own) and wait() (for scripts and tests, never for the UI).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from . import PROTOCOL_VERSION, versions
from .errors import ErrorCode, VideoSceneError
from .wire import (
    DEFAULT_MAX_MESSAGE_BYTES,
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_MISSES,
    Message,
    decode,
    encode,
)

REMEMBERED_JOB_MESSAGES = 1024  # msg_id -> job_id of recent submit/cancel/fetch, to address errors
REMEMBERED_HELLOS = 64


@dataclass
class ProgressEvent:
    job_id: str
    stage: str
    fraction: float
    message: str


@dataclass
class JobResult:
    job_id: str
    kind: str
    meta: dict
    arrays: dict[str, np.ndarray]
    blobs: dict[str, bytes]
    files: list[str]
    job_dir: str


@dataclass
class ResultEvent:
    job_id: str
    result: JobResult


@dataclass
class ErrorEvent:
    job_id: str | None
    error: VideoSceneError


@dataclass
class StateEvent:
    job_id: str
    state: str  # "queued" | "running" | "cancelled" | ...


@dataclass
class FramesReadyEvent:
    """A render job finished frames first .. first + count - 1 (one window); frames 0 .. ready - 1
    are all on the backend's disk now. Fetch them with request_frames / fetch_frames."""

    job_id: str
    first: int
    count: int
    ready: int
    total: int
    window: int
    windows: int
    kinds: list[str]
    width: int
    height: int


@dataclass
class FramesEvent:
    """The answer to request_frames: PNG file bytes of frames first .. first + len(frames) - 1
    (possibly fewer than asked: replies are bounded in size), or the error that refused it."""

    job_id: str
    request_id: str
    kind: str
    first: int
    frames: list[bytes]
    ready: int = 0
    total: int = 0
    error: VideoSceneError | None = None


Event = ProgressEvent | ResultEvent | ErrorEvent | StateEvent | FramesReadyEvent | FramesEvent
DEFAULT_MAX_FETCH_FRAMES = 64


class BackendClient:
    """heartbeat_timeout_s: silence after which the backend counts as dead; by default the
    welcome's heartbeat_interval_s x heartbeat_misses (the protocol's 0.5 s x 6 = 3 s)."""

    def __init__(
        self,
        address: str = "tcp://127.0.0.1:5557",
        *,
        server_public_key: str | bytes | None = None,
        client_public_key: str | bytes | None = None,
        client_secret_key: str | bytes | None = None,
        heartbeat_timeout_s: float | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.address = address
        self._fixed_heartbeat_timeout_s = heartbeat_timeout_s
        self.heartbeat_timeout_s = heartbeat_timeout_s or HEARTBEAT_INTERVAL_S * HEARTBEAT_MISSES
        self.ping_interval_s = HEARTBEAT_INTERVAL_S
        self.max_message_bytes = max_message_bytes
        # A context of its own, ended by close(): no zmq thread outlives the client.
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
        self._socket.setsockopt(zmq.LINGER, 1000)
        self._socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        if server_public_key:
            if not (client_public_key and client_secret_key):
                raise VideoSceneError(
                    ErrorCode.BAD_PARAMS,
                    "A server public key was given without a client key pair.",
                    "Create one with `videoscene-backend keygen DIR` and give both client keys.",
                )
            # z85 text, as str (the CLI) or bytes (zmq.auth.load_certificate, the add-on)
            self._socket.curve_serverkey = _key_bytes(server_public_key)
            self._socket.curve_publickey = _key_bytes(client_public_key)
            self._socket.curve_secretkey = _key_bytes(client_secret_key)
        self._socket.connect(address)
        self._connected = False
        self._last_heard = 0.0
        self._last_ping = 0.0
        self._pending: list[Event] = []
        self._awaited: set[str] = set()  # msg_ids of short requests waiting for their reply
        self._replies: dict[str, Message] = {}
        # request_frames ids -> (job id, kind, first); blocking fetch_frames answers land in
        # _frame_answers instead of the event list.
        self._frame_requests: dict[str, tuple[str, str, int]] = {}
        self._frame_answers: dict[str, FramesEvent | None] = {}
        self._hellos: OrderedDict[str, None] = OrderedDict()
        self._job_messages: OrderedDict[str, str] = OrderedDict()
        self.welcome: dict = {}

    # ---- connection --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, timeout_s: float = 5.0) -> dict:
        """Say hello and wait for the welcome. Repeated short attempts (the add-on's) also take
        the welcome answering an earlier attempt's hello."""
        hello = Message(
            "hello", body={"client": "videoscene_protocol", "version": PROTOCOL_VERSION}
        )
        self._hellos[hello.msg_id] = None
        while len(self._hellos) > REMEMBERED_HELLOS:
            self._awaited.discard(self._hellos.popitem(last=False)[0])
        reply = self._request(hello, timeout_s, expect="welcome", answers=self._hellos)
        for msg_id in self._hellos:
            self._awaited.discard(msg_id)
            self._replies.pop(msg_id, None)
        self._hellos.clear()
        self.welcome = reply.body
        self._use_heartbeat_settings(reply.body)
        self._connected = True
        self._last_heard = time.monotonic()
        return reply.body

    def _use_heartbeat_settings(self, welcome: dict) -> None:
        interval, misses = welcome.get("heartbeat_interval_s"), welcome.get("heartbeat_misses")
        if _positive_number(interval, 60):
            self.ping_interval_s = float(interval)
            if self._fixed_heartbeat_timeout_s is None and _positive_number(misses, 100):
                self.heartbeat_timeout_s = float(interval) * float(misses)

    def close(self) -> None:
        self._connected = False
        self._socket.close(linger=200)
        if not self._context.closed:
            self._context.term()

    # ---- jobs (non-blocking) -----------------------------------------------------------
    def submit(
        self,
        kind: str,
        params: dict,
        arrays: dict[str, np.ndarray] | None = None,
        blobs: dict[str, bytes] | None = None,
    ) -> str:
        if self.welcome:  # refuse before sending when the backend is too old for this kind
            versions.check_backend(kind, self.welcome.get("version"))
        job_id = uuid.uuid4().hex
        self._send_about_job(
            Message(
                "submit",
                body={"kind": kind, "params": params},
                job_id=job_id,
                arrays=arrays or {},
                blobs=blobs or {},
            )
        )
        return job_id

    def cancel(self, job_id: str) -> None:
        self._send_about_job(Message("cancel", job_id=job_id))

    def fetch(self, job_id: str) -> None:
        """Watch a job: its progress and result come to this client too (others keep theirs);
        a finished job's stored outcome is sent again."""
        self._send_about_job(Message("fetch", job_id=job_id))

    # ---- frame ranges (render_video) -----------------------------------------------------
    @property
    def max_fetch_frames(self) -> int:
        value = self.welcome.get("max_fetch_frames", DEFAULT_MAX_FETCH_FRAMES)
        return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_FETCH_FRAMES

    def request_frames(self, job_id: str, first: int, count: int, kind: str = "refined") -> str:
        """Ask for frames [first, first + count) of a render job (at most max_fetch_frames);
        the answer arrives from poll() as a FramesEvent carrying the returned request id."""
        message = Message(
            "fetch_frames", job_id=job_id, body={"kind": kind, "first": first, "count": count}
        )
        self._frame_requests[message.msg_id] = (job_id, kind, first)
        self._send(message)
        return message.msg_id

    def fetch_frames(
        self, job_id: str, first: int, count: int, kind: str = "refined", timeout_s: float = 30.0
    ) -> FramesEvent:
        """Blocking request_frames (scripts, tests, the headless run): raises the refusal."""
        request_id = self.request_frames(job_id, first, count, kind)
        self._frame_answers[request_id] = None
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                self._receive(timeout_ms=50)
                answer = self._frame_answers.get(request_id)
                if answer is not None:
                    if answer.error is not None:
                        raise answer.error
                    return answer
        finally:
            self._frame_answers.pop(request_id, None)
            self._frame_requests.pop(request_id, None)
        raise VideoSceneError(
            ErrorCode.TIMEOUT if self._connected else ErrorCode.BACKEND_DEAD,
            f"No frames from the backend at {self.address} within {timeout_s:g} s.",
            "Check that the backend is running; fetch the range again (frames stay on disk).",
        )

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        """Everything that arrived, as events. A silent backend yields one BACKEND_DEAD error."""
        self._receive(timeout_ms)
        now = time.monotonic()
        if self._connected and now - self._last_ping >= self.ping_interval_s:
            self._last_ping = now
            with contextlib.suppress(VideoSceneError):  # a full queue: the silence will tell
                self._send(Message("heartbeat"))
        if self._connected and now - self._last_heard > self.heartbeat_timeout_s:
            self._connected = False
            self._pending.append(ErrorEvent(None, self._dead_error(now - self._last_heard)))
        events, self._pending = self._pending, []
        return events

    def wait(
        self,
        job_id: str,
        timeout_s: float | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
    ) -> JobResult:
        """Block until the job's result (scripts and tests only; the add-on polls). Events of
        other jobs that arrive meanwhile are kept for the next poll() or wait()."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        others: list[Event] = []
        batch: deque[Event] = deque()
        try:
            while True:
                batch.extend(self.poll(timeout_ms=100))
                while batch:
                    event = batch.popleft()
                    if isinstance(event, ErrorEvent) and event.job_id in (job_id, None):
                        raise event.error
                    if event.job_id != job_id:
                        others.append(event)
                        continue
                    if isinstance(event, ResultEvent):
                        return event.result
                    if isinstance(event, ProgressEvent) and on_progress:
                        on_progress(event)
                    if isinstance(event, StateEvent) and event.state == "cancelled":
                        raise VideoSceneError(ErrorCode.CANCELLED, f"Job {job_id} was cancelled.")
                if deadline is not None and time.monotonic() > deadline:
                    raise VideoSceneError(
                        ErrorCode.TIMEOUT,
                        f"Job {job_id} did not finish within {timeout_s} s.",
                        "The job keeps running on the backend; fetch it later by id.",
                    )
        finally:  # the other jobs' events, and the rest of the batch, in their order
            self._pending[:0] = [*others, *batch]

    # ---- short requests ----------------------------------------------------------------
    def status(self, timeout_s: float = 5.0) -> dict:
        return self._request(Message("status"), timeout_s, expect="status_reply").body

    def release_models(self, timeout_s: float = 5.0) -> dict:
        return self._request(Message("release_models"), timeout_s, expect="released").body

    def check_weights(self, timeout_s: float = 120.0) -> dict:
        """The backend's check of its installed weights: {"root", "ok", "summary", "rows":
        [{"path", "status", "what", "needed_for", "required", "source"}]} (protocol 1.1)."""
        return self._request(Message("check_weights"), timeout_s, expect="weights_report").body

    # ---- internals ---------------------------------------------------------------------
    def _dead_error(self, silent_s: float) -> VideoSceneError:
        return VideoSceneError(
            ErrorCode.BACKEND_DEAD,
            f"The backend at {self.address} has not answered for {silent_s:.1f} s.",
            "Check that the backend process is running (its log says why it stopped); finished "
            "results stay in its output folder and can be fetched after a restart.",
        )

    def _send_about_job(self, message: Message) -> None:
        """Send, remembering which job the message is about: an error answering it that the
        backend could not address by job_id still reaches that job (through reply_to)."""
        self._job_messages[message.msg_id] = message.job_id or ""
        while len(self._job_messages) > REMEMBERED_JOB_MESSAGES:
            self._job_messages.popitem(last=False)
        self._send(message)

    def _send(self, message: Message) -> None:
        try:
            self._socket.send_multipart(encode(message), copy=False, flags=zmq.NOBLOCK)
        except zmq.Again as exc:
            raise VideoSceneError(
                ErrorCode.BACKEND_DEAD,
                f"Cannot send to {self.address}: queue full.",
                "Is the backend running?",
            ) from exc

    def _request(
        self,
        message: Message,
        timeout_s: float,
        expect: str,
        answers: OrderedDict[str, None] | None = None,
    ) -> Message:
        """Send and wait for the reply addressed to it (or to any msg_id in `answers`)."""
        accepted = answers if answers is not None else {message.msg_id: None}
        self._awaited.add(message.msg_id)
        try:
            self._send(message)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                self._receive(timeout_ms=50)
                for msg_id in [m for m in accepted if m in self._replies]:
                    reply = self._replies.pop(msg_id)
                    if reply.type == "error":
                        raise VideoSceneError.from_dict(reply.body)
                    if reply.type == expect:
                        return reply
        finally:
            if answers is None:
                self._awaited.discard(message.msg_id)
                self._replies.pop(message.msg_id, None)
        raise VideoSceneError(
            ErrorCode.TIMEOUT if self._connected else ErrorCode.BACKEND_DEAD,
            f"No {expect} from the backend at {self.address} within {timeout_s:g} s.",
            "Start the backend (`videoscene-backend serve`), check the address, and for a remote "
            "backend the keys.",
        )

    def _receive(self, timeout_ms: int) -> None:
        wait = timeout_ms
        while self._socket.poll(wait, zmq.POLLIN):
            wait = 0
            frames = self._socket.recv_multipart(copy=False)
            self._last_heard = time.monotonic()
            try:
                message = decode(frames, self.max_message_bytes)
            except VideoSceneError as error:
                self._pending.append(ErrorEvent(None, error))
                continue
            self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        """Route one backend message: a frames answer, a short request's reply, or an event
        about a job."""
        body = message.body
        reply_to = body.get("reply_to")
        if isinstance(reply_to, str) and reply_to in self._frame_requests:
            self._frames_answer(reply_to, message)
            return
        if isinstance(reply_to, str) and reply_to in self._awaited:
            self._replies[reply_to] = message
            return
        job_id = message.job_id
        if job_id is None and isinstance(reply_to, str):
            job_id = self._job_messages.get(reply_to) or None
        try:
            event = self._event(message.type, job_id, message)
        except (TypeError, ValueError, AttributeError) as exc:  # a malformed backend message
            event = ErrorEvent(
                job_id,
                VideoSceneError(
                    ErrorCode.BAD_MESSAGE,
                    f"The backend sent a malformed {message.type}: {exc}",
                    "The backend and this client may be of different releases.",
                ),
            )
        if event is not None:
            self._pending.append(event)

    @staticmethod
    def _event(kind: str, job_id: str | None, message: Message) -> Event | None:
        body = message.body
        if kind == "progress" and job_id:
            return ProgressEvent(
                job_id,
                str(body.get("stage", "")),
                float(body.get("fraction", 0.0)),
                str(body.get("message", "")),
            )
        if kind == "result" and job_id:
            return ResultEvent(job_id, _result_from(message))
        if kind == "error":  # any code, known or not: the message and hint say what happened
            return ErrorEvent(job_id, VideoSceneError.from_dict(body))
        if kind in ("accepted", "cancelled") and job_id:
            return StateEvent(job_id, str(body.get("state", kind)))
        if kind == "frames_ready" and job_id:
            return _frames_ready_from(message)
        return None  # heartbeats, stray replies to requests no longer awaited

    def _frames_answer(self, request_id: str, message: Message) -> None:
        job_id, kind, first = self._frame_requests.pop(request_id)
        body = message.body
        if message.type == "frames":
            frames = [
                bytes(message.blobs[name])
                for name in sorted(message.blobs, key=lambda n: int(n) if n.isdigit() else -1)
            ]
            event = FramesEvent(
                job_id,
                request_id,
                kind,
                first,
                frames,
                ready=_int(body.get("ready")),
                total=_int(body.get("total")),
            )
        else:
            error = (
                VideoSceneError.from_dict(body)
                if message.type == "error"
                else VideoSceneError(
                    ErrorCode.BAD_MESSAGE, f"Unexpected {message.type!r} answer to fetch_frames."
                )
            )
            event = FramesEvent(job_id, request_id, kind, first, [], error=error)
        if request_id in self._frame_answers:
            self._frame_answers[request_id] = event
        else:
            self._pending.append(event)


def _positive_number(value: object, maximum: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= maximum


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _frames_ready_from(message: Message) -> FramesReadyEvent:
    body = message.body
    kinds = body.get("kinds")
    return FramesReadyEvent(
        job_id=message.job_id or "",
        first=_int(body.get("first")),
        count=_int(body.get("count")),
        ready=_int(body.get("ready")),
        total=_int(body.get("total")),
        window=_int(body.get("window")),
        windows=_int(body.get("windows")),
        kinds=[str(k) for k in kinds] if isinstance(kinds, list) else [],
        width=_int(body.get("width")),
        height=_int(body.get("height")),
    )


def _result_from(message: Message) -> JobResult:
    body: dict[str, Any] = message.body
    return JobResult(
        job_id=message.job_id or "",
        kind=str(body.get("kind", "")),
        meta=dict(body.get("meta", {})),
        arrays=dict(message.arrays),
        blobs={name: bytes(view) for name, view in message.blobs.items()},
        files=[str(name) for name in body.get("files", [])],
        job_dir=str(body.get("job_dir", "")),
    )


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)

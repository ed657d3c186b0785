"""The backend client: handshake, non-blocking submit/poll, cancel, fetch, dead-backend detection.

Runs inside Blender (stdlib + numpy + pyzmq). Nothing here blocks except connect(), status(),
release_models() (short, bounded), check_weights() (seconds; the add-on calls it from a worker
thread with a client of its own) and wait() (for scripts and tests, never for the UI).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from . import PROTOCOL_VERSION
from .errors import ErrorCode, VideoSceneError
from .wire import DEFAULT_MAX_MESSAGE_BYTES, Message, decode, encode

CLIENT_PING_INTERVAL_S = 1.0


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


Event = ProgressEvent | ResultEvent | ErrorEvent | StateEvent


class BackendClient:
    def __init__(
        self,
        address: str = "tcp://127.0.0.1:5557",
        *,
        server_public_key: str | None = None,
        client_public_key: str | None = None,
        client_secret_key: str | None = None,
        heartbeat_timeout_s: float = 5.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.address = address
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.max_message_bytes = max_message_bytes
        self._context = zmq.Context.instance()
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
            self._socket.curve_serverkey = server_public_key.encode()
            self._socket.curve_publickey = client_public_key.encode()
            self._socket.curve_secretkey = client_secret_key.encode()
        self._socket.connect(address)
        self._connected = False
        self._last_heard = 0.0
        self._last_ping = 0.0
        self._pending: list[Event] = []
        self._replies: dict[str, Message] = {}
        self.welcome: dict = {}

    # ---- connection --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, timeout_s: float = 5.0) -> dict:
        hello = Message(
            "hello", body={"client": "videoscene_protocol", "version": PROTOCOL_VERSION}
        )
        reply = self._request(hello, timeout_s, expect="welcome")
        self.welcome = reply.body
        self._connected = True
        self._last_heard = time.monotonic()
        return reply.body

    def close(self) -> None:
        self._connected = False
        self._socket.close(linger=200)

    # ---- jobs (non-blocking) -----------------------------------------------------------
    def submit(
        self,
        kind: str,
        params: dict,
        arrays: dict[str, np.ndarray] | None = None,
        blobs: dict[str, bytes] | None = None,
    ) -> str:
        job_id = uuid.uuid4().hex
        self._send(
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
        self._send(Message("cancel", job_id=job_id))

    def fetch(self, job_id: str) -> None:
        self._send(Message("fetch", job_id=job_id))

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        """Everything that arrived, as events. A silent backend yields one BACKEND_DEAD error."""
        self._receive(timeout_ms)
        now = time.monotonic()
        if self._connected and now - self._last_ping >= CLIENT_PING_INTERVAL_S:
            self._send(Message("heartbeat"))
            self._last_ping = now
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
        """Block until the job's result (scripts and tests only; the add-on polls)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            for event in self.poll(timeout_ms=100):
                if isinstance(event, ErrorEvent) and event.job_id in (job_id, None):
                    raise event.error
                if event.job_id != job_id:
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

    def _send(self, message: Message) -> None:
        try:
            self._socket.send_multipart(encode(message), copy=False, flags=zmq.NOBLOCK)
        except zmq.Again as exc:
            raise VideoSceneError(
                ErrorCode.BACKEND_DEAD,
                f"Cannot send to {self.address}: queue full.",
                "Is the backend running?",
            ) from exc

    def _request(self, message: Message, timeout_s: float, expect: str) -> Message:
        self._send(message)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._receive(timeout_ms=50)
            reply = self._replies.pop(message.msg_id, None)
            if reply is None:
                continue
            if reply.type == "error":
                raise VideoSceneError.from_dict(reply.body)
            if reply.type == expect:
                return reply
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
        reply_to = message.body.get("reply_to") if isinstance(message.body, dict) else None
        if (
            isinstance(reply_to, str)
            and message.type in ("welcome", "status_reply", "released", "weights_report", "error")
            and not message.job_id
        ):
            self._replies[reply_to] = message
            return
        job_id = message.job_id
        if message.type == "heartbeat":
            return
        if message.type == "progress":
            body = message.body
            self._pending.append(
                ProgressEvent(
                    job_id,
                    str(body.get("stage", "")),
                    float(body.get("fraction", 0.0)),
                    str(body.get("message", "")),
                )
            )
        elif message.type == "result":
            self._pending.append(ResultEvent(job_id, _result_from(message)))
        elif message.type == "error":
            self._pending.append(ErrorEvent(job_id, VideoSceneError.from_dict(message.body)))
        elif message.type in ("accepted", "cancelled"):
            self._pending.append(StateEvent(job_id, message.body.get("state", message.type)))


def _result_from(message: Message) -> JobResult:
    body: dict[str, Any] = message.body
    return JobResult(
        job_id=message.job_id or "",
        kind=str(body.get("kind", "")),
        meta=body.get("meta", {}),
        arrays=dict(message.arrays),
        blobs={name: bytes(view) for name, view in message.blobs.items()},
        files=list(body.get("files", [])),
        job_dir=str(body.get("job_dir", "")),
    )

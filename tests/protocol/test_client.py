"""The reference client against a scripted peer (a real ROUTER socket speaking the protocol):
unknown error codes, malformed backend messages, reply routing, heartbeat settings, close."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
import zmq
from client_events import events_until
from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.client import BackendClient, ErrorEvent, ProgressEvent
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import HEARTBEAT_INTERVAL_S, HEARTBEAT_MISSES, Message, decode, encode


class ScriptedPeer:
    """A ROUTER on loopback: answers hello with a welcome, records what the client sends."""

    def __init__(self, welcome_extra: dict | None = None) -> None:
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.welcome_extra = welcome_extra or {}
        self.identity = b""
        self.received: list[Message] = []

    def serve(self, until: float, stop_after_welcome: bool = False) -> None:
        while time.monotonic() < until:
            if not self.router.poll(20):
                continue
            identity, *frames = self.router.recv_multipart()
            self.identity = identity
            message = decode(frames)
            self.received.append(message)
            if message.type == "hello":
                body = {
                    "version": PROTOCOL_VERSION,
                    "reply_to": message.msg_id,
                    **self.welcome_extra,
                }
                self.send(Message("welcome", body=body))
                if stop_after_welcome:
                    return

    def send(self, message: Message) -> None:
        self.router.send_multipart([self.identity, *encode(message)])

    def close(self) -> None:
        self.router.close()
        self.context.term()


@pytest.fixture()
def peer() -> Iterator[ScriptedPeer]:
    peer = ScriptedPeer()
    yield peer
    peer.close()


def connected(peer: ScriptedPeer, **options) -> BackendClient:
    client = BackendClient(peer.address, **options)
    server = threading.Thread(target=peer.serve, args=(time.monotonic() + 10, True))
    server.start()
    client.connect(timeout_s=10)
    server.join()
    return client


def test_an_unknown_error_code_reaches_the_job_without_crashing(peer) -> None:
    client = connected(peer)
    job = client.submit("build_scene", {})
    peer.send(
        Message(
            "error",
            body={"code": "gpu_on_fire", "message": "too hot", "hint": "wait"},
            job_id=job,
        )
    )
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=5)
    assert info.value.code.value == "gpu_on_fire" and info.value.message == "too hot"
    client.close()


def test_an_error_addressed_only_by_reply_to_reaches_its_job(peer) -> None:
    client = connected(peer)
    job = client.submit("build_scene", {})
    peer.serve(time.monotonic() + 0.5)
    submit = next(m for m in peer.received if m.type == "submit")
    peer.send(Message("error", body={"code": "bad_message", "reply_to": submit.msg_id}))
    events = events_until(client, lambda e: isinstance(e, ErrorEvent))
    assert [e.job_id for e in events if isinstance(e, ErrorEvent)] == [job]
    client.close()


def test_waiting_on_one_job_keeps_the_other_jobs_events(peer) -> None:
    client = connected(peer)
    first, second = client.submit("build_scene", {}), client.submit("build_scene", {})
    peer.send(Message("progress", body={"stage": "prior", "fraction": 0.5}, job_id=second))
    peer.send(Message("result", body={"kind": "build_scene", "meta": {}}, job_id=first))
    peer.send(Message("progress", body={"stage": "prior", "fraction": 0.9}, job_id=second))
    assert client.wait(first, timeout_s=10).job_id == first
    events = events_until(client, lambda e: isinstance(e, ProgressEvent) and e.fraction == 0.9)
    assert [(e.job_id, e.fraction) for e in events] == [(second, 0.5), (second, 0.9)]
    client.close()


def test_malformed_backend_messages_become_error_events(peer) -> None:
    client = connected(peer)
    job = client.submit("render_video", {})
    peer.send(Message("progress", body={"stage": "render", "fraction": "most"}, job_id=job))
    peer.send(Message("progress", body={"stage": "render", "fraction": 0.5}, job_id=job))
    events = events_until(client, lambda e: isinstance(e, ProgressEvent))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors and errors[0].job_id == job and errors[0].error.code == ErrorCode.BAD_MESSAGE
    client.close()


def test_a_late_reply_to_an_abandoned_request_is_dropped(peer) -> None:
    client = connected(peer)
    with pytest.raises(VideoSceneError):
        client.status(timeout_s=0.2)  # the scripted peer never answers status
    peer.serve(time.monotonic() + 0.5)
    status = next(m for m in peer.received if m.type == "status")
    peer.send(Message("status_reply", body={"reply_to": status.msg_id}))
    assert client.poll(timeout_ms=500) == [] and client._replies == {}
    client.close()


def test_the_welcome_sets_the_heartbeat_timeout(peer) -> None:
    default = BackendClient(peer.address)
    assert default.heartbeat_timeout_s == HEARTBEAT_INTERVAL_S * HEARTBEAT_MISSES
    default.close()
    peer.welcome_extra = {"heartbeat_interval_s": 0.25, "heartbeat_misses": 4}
    client = connected(peer)
    assert client.heartbeat_timeout_s == 1.0 and client.ping_interval_s == 0.25
    client.close()


def test_a_silent_peer_is_reported_dead_after_the_heartbeat_timeout(peer) -> None:
    peer.welcome_extra = {"heartbeat_interval_s": 0.1, "heartbeat_misses": 5}
    client = connected(peer)
    started = time.monotonic()
    events = events_until(client, lambda e: isinstance(e, ErrorEvent), timeout_s=5)
    assert events[-1].error.code == ErrorCode.BACKEND_DEAD and events[-1].job_id is None
    assert 0.4 <= time.monotonic() - started < 3.0
    client.close()


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_close_leaves_no_zmq_thread_behind(peer) -> None:
    before = _os_threads()
    for _ in range(3):
        connected(peer).close()
    assert _os_threads() <= before  # each client's zmq threads ended with it
    client = BackendClient(peer.address)
    client.close()
    client.close()  # twice is harmless

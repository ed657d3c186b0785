"""The live service: jobs, progress, cancel, status mid-job, bad input, reconnect and fetch."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import zmq
from client_events import events_until
from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.client import BackendClient, ErrorEvent, ProgressEvent, StateEvent
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import Message, encode

from .conftest import RELEASE


def test_result_round_trip_with_arrays_blobs_and_files(client, service) -> None:
    path = np.arange(32, dtype=np.float64).reshape(2, 4, 4)
    job = client.submit("echo", {"a": 1}, arrays={"c2w": path}, blobs={"image_0": b"\x89PNG"})
    result = client.wait(job, timeout_s=10)
    assert result.meta == {"params": {"a": 1}}
    np.testing.assert_array_equal(result.arrays["c2w"], path)
    assert result.arrays["frames"].shape == (3, 4, 5, 3) and result.blobs["image_0"] == b"\x89PNG"
    assert result.files == ["note.txt"]
    job_dir = service.service.output_dir / "jobs" / job
    assert (job_dir / "note.txt").read_text() == "hello" and (job_dir / "result.json").is_file()
    assert not list((service.service.output_dir / "jobs").glob(".*partial"))


def test_status_and_heartbeats_are_answered_during_a_long_job(client) -> None:
    job = client.submit("slow", {})
    events_until(client, lambda e: isinstance(e, ProgressEvent) and e.fraction > 0)
    started = time.monotonic()
    status = client.status()
    assert time.monotonic() - started < 1.0
    assert status["running"]["job_id"] == job and status["running"]["stage"] == "render"
    RELEASE.set()
    assert client.wait(job, timeout_s=10).meta["steps"] > 0


def test_cancel_mid_job(client, service) -> None:
    job = client.submit("slow", {})
    events_until(client, lambda e: isinstance(e, ProgressEvent))
    client.cancel(job)
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=10)
    assert info.value.code == ErrorCode.CANCELLED
    assert (service.service.output_dir / "jobs" / job / "error.json").is_file()


def test_cancel_a_queued_job(client) -> None:
    running = client.submit("slow", {})
    queued = client.submit("slow", {})
    events_until(client, lambda e: isinstance(e, ProgressEvent) and e.job_id == running)
    client.cancel(queued)
    events_until(
        client,
        lambda e: isinstance(e, StateEvent) and e.job_id == queued and e.state == "cancelled",
    )
    RELEASE.set()
    client.wait(running, timeout_s=10)


def test_queue_full(client) -> None:
    running = client.submit("slow", {})
    # Only once the worker holds the first job do exactly two more fit in the queue.
    events_until(client, lambda e: isinstance(e, ProgressEvent) and e.job_id == running)
    jobs = [client.submit("slow", {}) for _ in range(3)]  # max_queue = 2 waiting
    events = events_until(client, lambda e: isinstance(e, ErrorEvent))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors[0].job_id == jobs[2] and errors[0].error.code == ErrorCode.QUEUE_FULL


def test_handler_exceptions_become_internal_errors_and_the_service_goes_on(client) -> None:
    with pytest.raises(VideoSceneError) as info:
        client.wait(client.submit("crash", {}), timeout_s=10)
    assert info.value.code == ErrorCode.INTERNAL and "boom" in info.value.message
    assert client.wait(client.submit("echo", {}), timeout_s=10).meta == {"params": {}}


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda c: c.submit("teleport", {}), ErrorCode.UNKNOWN_JOB_KIND),
        (lambda c: c.fetch("doesnotexist"), ErrorCode.UNKNOWN_JOB),
        (lambda c: c.cancel("doesnotexist"), ErrorCode.UNKNOWN_JOB),
        (lambda c: c.submit("echo", ["not", "a", "dict"]), ErrorCode.BAD_PARAMS),
    ],
)
def test_bad_requests_get_error_events(client, action, code) -> None:
    action(client)
    events = events_until(client, lambda e: isinstance(e, ErrorEvent))
    assert events[-1].error.code == code and events[-1].error.hint


def _raw_socket(address: str) -> zmq.Socket:
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 100)
    socket.connect(address)
    return socket


def _first_error(socket: zmq.Socket) -> dict:
    import json

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if socket.poll(100):
            envelope = json.loads(socket.recv_multipart()[0])
            if envelope["type"] == "error":
                return envelope["body"]
    raise AssertionError("no error reply")


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([b"garbage"], ErrorCode.BAD_JSON),
        (
            [b'{"protocol": "videoscene", "version": "0.1", "type": "hello", "msg_id": "m"}'],
            ErrorCode.VERSION_MISMATCH,
        ),
        (
            [b'{"protocol": "videoscene", "version": "1.0", "type": "dance", "msg_id": "m"}'],
            ErrorCode.UNKNOWN_TYPE,
        ),
        (
            [b'{"protocol": "videoscene", "version": "1.0", "type": "welcome", "msg_id": "m"}'],
            ErrorCode.UNKNOWN_TYPE,
        ),
        (
            [
                b'{"protocol": "videoscene", "version": "1.0", "type": "submit", "msg_id": "m", "job_id": "j", "body": {"kind": "echo"}, '
                b'"buffers": [{"name": "a", "kind": "array", "dtype": "float32", "shape": [100], "nbytes": 400}]}',
                b"\x00" * 8,
            ],
            ErrorCode.SHAPE_MISMATCH,
        ),
    ],
)
def test_malformed_messages_get_errors_and_the_service_stays_up(service, frames, code) -> None:
    socket = _raw_socket(service.address)
    socket.send_multipart(frames)
    assert _first_error(socket)["code"] == code
    socket.close()
    good = BackendClient(service.address)
    good.connect()
    assert good.status()["version"] == PROTOCOL_VERSION
    good.close()


def test_oversize_message_is_refused_and_the_service_stays_up(tmp_path, handlers) -> None:
    from videoscene_backend.service import start_in_thread

    handle = start_in_thread(tmp_path / "out", max_message_bytes=10_000)
    try:
        socket = _raw_socket(handle.address)
        socket.send_multipart(
            encode(Message("submit", body={"kind": "echo"}, job_id="j", blobs={"b": b"x" * 5000}))
            + [b"y" * 6000]
        )
        time.sleep(0.3)
        good = BackendClient(handle.address)
        good.connect()
        assert good.wait(good.submit("echo", {}), timeout_s=10)
        good.close()
        socket.close()
    finally:
        handle.stop()


def test_hundreds_of_random_messages_do_not_hurt_the_service(service) -> None:
    rng = random.Random(1)
    socket = _raw_socket(service.address)
    pieces = [
        b"{",
        b"}",
        b'"type"',
        b'"submit"',
        b'"version": "1.0"',
        b"\x00",
        b'"buffers": [',
        b"]",
        b'"protocol": "videoscene"',
        b",",
    ]
    for _ in range(400):
        frames = [
            b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
            for _ in range(rng.randint(1, 4))
        ]
        socket.send_multipart(frames)
    time.sleep(0.5)
    socket.close()
    good = BackendClient(service.address)
    good.connect()
    assert good.wait(good.submit("echo", {"ok": True}), timeout_s=10).meta == {
        "params": {"ok": True}
    }
    good.close()


def test_a_new_client_fetches_a_job_whose_client_vanished(service) -> None:
    first = BackendClient(service.address)
    first.connect()
    job = first.submit("slow", {})
    events_until(first, lambda e: isinstance(e, ProgressEvent))
    first.close()  # the artist's Blender crashed mid-job
    RELEASE.set()
    second = BackendClient(service.address)
    second.connect()
    second.fetch(job)
    assert second.wait(job, timeout_s=10).meta["steps"] > 0
    second.fetch(job)  # again, from disk
    assert second.wait(job, timeout_s=10).meta["steps"] > 0
    second.close()


def test_release_models(client, service) -> None:
    service.service.models.get("video:test", lambda: object())
    assert client.release_models()["released"] == ["video:test"]
    assert client.status()["models"] == []

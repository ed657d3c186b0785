"""Streamed render results: frames_ready events, frame ranges fetched while the job runs, after
it finished and after a backend restart; hostile range requests; the version gate."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import zmq
from client_events import events_until
from videoscene_backend.pipeline.frame_store import (
    MAX_FETCH_FRAMES,
    FrameManifest,
    FrameWriter,
    decode_frame,
    read_range,
)
from videoscene_backend.scene.gaussians import GaussianScene
from videoscene_backend.service import start_in_thread
from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.client import (
    BackendClient,
    FramesEvent,
    FramesReadyEvent,
    ResultEvent,
)
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import Message, encode

WIDTH, HEIGHT = 32, 24


def _scene() -> GaussianScene:
    g = torch.Generator().manual_seed(0)
    count = 200
    return GaussianScene(
        means=torch.rand(count, 3, generator=g) * 2 - torch.tensor([1.0, 1.0, -3.0]),
        quats=torch.nn.functional.normalize(torch.randn(count, 4, generator=g), dim=-1),
        scales=torch.rand(count, 3, generator=g) * 0.1 + 0.05,
        opacities=torch.rand(count, generator=g) * 0.5 + 0.5,
        sh=torch.randn(count, 1, 3, generator=g) * 0.5,
    )


def _path(count: int) -> dict[str, np.ndarray]:
    c2w = np.tile(np.eye(4), (count, 1, 1))
    c2w[:, 0, 3] = np.linspace(-0.5, 0.5, count)
    K = np.tile(np.array([[30.0, 0, WIDTH / 2], [0, 30.0, HEIGHT / 2], [0, 0, 1]]), (count, 1, 1))
    return {"c2w": c2w, "K": K}


def test_frames_stream_by_window_and_are_fetched_again_after_a_restart(tmp_path) -> None:
    handle = start_in_thread(tmp_path / "out", tmp_path / "no-checkpoints")
    client = BackendClient(handle.address)
    try:
        client.connect()
        scene_id = handle.service.scenes.put(_scene())
        params = {"scene_id": scene_id, "width": WIDTH, "height": HEIGHT, "refine": False}
        job = client.submit("render_video", params, arrays=_path(60))
        # The first window's frames can be fetched as soon as they are announced.
        ready = events_until(client, lambda e: isinstance(e, FramesReadyEvent))[-1]
        assert (ready.first, ready.count, ready.total, ready.windows) == (0, 49, 60, 2)
        assert ready.kinds == ["coarse"] and (ready.width, ready.height) == (WIDTH, HEIGHT)
        early = client.fetch_frames(job, 0, 49, "coarse")
        assert len(early.frames) == 49 and early.total == 60
        assert decode_frame(early.frames[0]).shape == (HEIGHT, WIDTH, 3)
        events = events_until(client, lambda e: isinstance(e, ResultEvent) and e.job_id == job)
        result = events[-1].result
        assert not result.arrays and result.meta["frames"]["ready"] == 60
        assert [e.first for e in events if isinstance(e, FramesReadyEvent)] == [49]
        tail = client.fetch_frames(job, 40, 20, "coarse")
        assert tail.frames[:9] == early.frames[40:]  # the same files, before and after
    finally:
        client.close()
        handle.stop()

    # A new backend on the same output folder serves the finished job's frames by id.
    handle = start_in_thread(tmp_path / "out", tmp_path / "no-checkpoints")
    client = BackendClient(handle.address)
    try:
        client.connect()
        again = client.fetch_frames(job, 10, 5, "coarse")
        assert again.frames == early.frames[10:15] and again.ready == 60
        # Non-blocking requests answer through poll(), errors included, without failing the job.
        request = client.request_frames(job, 0, 2, "refined")
        answer = events_until(client, lambda e: isinstance(e, FramesEvent))[-1]
        assert answer.request_id == request and answer.error.code == ErrorCode.BAD_PARAMS
        assert "no refined frames" in answer.error.message
    finally:
        client.close()
        handle.stop()


def test_a_job_that_ends_before_the_first_poll_loses_no_event(tmp_path) -> None:
    """The compiled renderer can finish a short render before the client first polls: its
    frames_ready, later frames_ready and result then come in one poll() batch, and waiting for
    the first must keep the rest (events_until, like BackendClient.wait)."""
    handle = start_in_thread(tmp_path / "out", tmp_path / "no-checkpoints")
    client = BackendClient(handle.address)
    try:
        client.connect()
        scene_id = handle.service.scenes.put(_scene())
        params = {"scene_id": scene_id, "width": WIDTH, "height": HEIGHT, "refine": False}
        job = client.submit("render_video", params, arrays=_path(60))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the server's side: done, its messages sent
            server_job = handle.service._jobs.get(job)
            if server_job is not None and not server_job.active and handle.service._outbox.empty():
                break
            time.sleep(0.05)
        client.status()  # answered after the job's messages on the same pipe: all arrived
        first = events_until(client, lambda e: isinstance(e, FramesReadyEvent))[-1]
        assert first.first == 0
        events = events_until(client, lambda e: isinstance(e, ResultEvent) and e.job_id == job)
        assert [e.first for e in events if isinstance(e, FramesReadyEvent)] == [49]
        assert events[-1].result.meta["frames"]["ready"] == 60
    finally:
        client.close()
        handle.stop()


@pytest.mark.parametrize(
    ("job_id", "body", "code"),
    [
        ("../../etc", {"kind": "coarse", "first": 0, "count": 1}, ErrorCode.BAD_MESSAGE),
        (".hidden", {"kind": "coarse", "first": 0, "count": 1}, ErrorCode.BAD_MESSAGE),
        ("nosuchjob", {"kind": "coarse", "first": 0, "count": 1}, ErrorCode.UNKNOWN_JOB),
        ("linked", {"kind": "coarse", "first": 0, "count": 1}, ErrorCode.BAD_MESSAGE),
        ("done", {"kind": "masks", "first": 0, "count": 1}, ErrorCode.BAD_PARAMS),
        ("done", {"kind": "coarse", "first": True, "count": 1}, ErrorCode.BAD_PARAMS),
        ("done", {"kind": "coarse", "first": -1, "count": 1}, ErrorCode.BAD_PARAMS),
        ("done", {"kind": "coarse", "first": 0, "count": 0}, ErrorCode.BAD_PARAMS),
        ("done", {"kind": "coarse", "first": 0, "count": 1.5}, ErrorCode.BAD_PARAMS),
        (
            "done",
            {"kind": "coarse", "first": 0, "count": MAX_FETCH_FRAMES + 1},
            ErrorCode.BAD_PARAMS,
        ),
        ("done", {"kind": "coarse", "first": 5, "count": 2}, ErrorCode.BAD_PARAMS),
        ("done", {"kind": "coarse", "first": 2**70, "count": 1}, ErrorCode.BAD_PARAMS),
        ("running", {"kind": "coarse", "first": 2, "count": 1}, ErrorCode.NOT_READY),
    ],
)
def test_hostile_range_requests_are_refused(tmp_path, job_id, body, code) -> None:
    out = tmp_path / "out"
    # Started first: its start-up removes work folders no journalled job owns.
    handle = start_in_thread(out, tmp_path / "no-checkpoints")
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    done = FrameWriter(out / "jobs" / "done", FrameManifest(6, WIDTH, HEIGHT, ["coarse"]))
    for index in range(6):
        done.write("coarse", index, frame)
    done.mark_ready(6, 1)
    # A job folder linked to frames outside the output folder: never followed.
    outside = FrameWriter(tmp_path / "outside", FrameManifest(1, WIDTH, HEIGHT, ["coarse"]))
    outside.write("coarse", 0, frame)
    outside.mark_ready(1, 1)
    (out / "jobs" / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    running = FrameWriter(
        out / "jobs" / ".running.partial", FrameManifest(9, WIDTH, HEIGHT, ["coarse"])
    )
    running.write("coarse", 0, frame)
    running.write("coarse", 1, frame)
    running.mark_ready(2, 1)
    client = BackendClient(handle.address)
    try:
        client.connect()
        socket = client._socket  # the raw request, exactly as a hostile peer would send it
        message = Message("fetch_frames", job_id=job_id, body=body)
        client._frame_requests[message.msg_id] = (job_id, "coarse", 0)
        client._frame_answers[message.msg_id] = None
        socket.send_multipart(encode(message))
        deadline = time.monotonic() + 10
        while client._frame_answers[message.msg_id] is None and time.monotonic() < deadline:
            client._receive(timeout_ms=50)
        answer = client._frame_answers[message.msg_id]
        assert answer is not None and answer.error is not None and answer.error.code == code
        assert answer.error.hint
        # A running job's ready frames are served from its partial folder.
        assert len(client.fetch_frames("running", 0, 9, "coarse").frames) == 2
        assert client.status()["version"] == PROTOCOL_VERSION  # still serving
    finally:
        client.close()
        handle.stop()


def test_replies_are_bounded_in_bytes(tmp_path) -> None:
    folder = tmp_path / "jobs" / "big"
    writer = FrameWriter(folder, FrameManifest(10, 64, 64, ["coarse"]))
    rng = np.random.default_rng(0)
    for index in range(10):
        writer.write("coarse", index, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    writer.mark_ready(10, 1)
    one = (folder / "coarse" / "000000.png").stat().st_size
    assert len(read_range([folder], "coarse", 0, 10, max_bytes=3 * one).frames) == 3
    assert len(read_range([folder], "coarse", 0, 10, max_bytes=1).frames) == 1  # never 0
    assert json.loads((folder / "frames.json").read_text())["ready"] == 10
    assert not list(folder.rglob(".*.tmp"))  # every file was renamed into place


def test_an_old_client_gets_a_clear_version_error(tmp_path) -> None:
    handle = start_in_thread(tmp_path / "out", tmp_path / "no-checkpoints")
    context = zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(handle.address)
    try:
        frames = encode(
            Message("submit", job_id="old", body={"kind": "render_video", "params": {}})
        )
        envelope = json.loads(frames[0])
        envelope["version"] = "1.0"
        socket.send_multipart([json.dumps(envelope).encode(), *frames[1:]])
        assert socket.poll(10_000)
        reply = json.loads(socket.recv_multipart()[0])
        assert reply["type"] == "error" and reply["body"]["code"] == "version_mismatch"
        assert "1.3" in reply["body"]["message"] and "add-on" in reply["body"]["hint"]
    finally:
        socket.close()
        handle.stop()


def test_a_new_client_refuses_an_old_backend_for_render_video() -> None:
    client = BackendClient("tcp://127.0.0.1:9")  # never contacted
    client.welcome = {"version": "1.0"}
    try:
        with pytest.raises(VideoSceneError) as info:
            client.submit("render_video", {})
        assert info.value.code == ErrorCode.VERSION_MISMATCH
        assert "Update the backend" in info.value.hint
    finally:
        client.close()

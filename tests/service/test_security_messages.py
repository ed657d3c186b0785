"""Message budgets before buffering: a frame over the limit is dropped by ZeroMQ as it arrives
(the backend's memory does not grow by it); a message of many frames over the total limit is
refused, addressed; the service serves the next job. (libzmq has no frame-count limit: see
docs/protocol.md, "Memory and disk", for what that leaves to authenticated peers.)"""

from __future__ import annotations

import time

import psutil
import zmq
from videoscene_backend.service import start_in_thread
from videoscene_protocol.wire import Message, encode

from .test_hardening import raw_socket, replies, serves_the_next_job

LIMIT = 1 << 20  # 1 MiB


def test_an_oversized_frame_is_dropped_before_it_is_buffered(tmp_path, handlers) -> None:
    handle = start_in_thread(tmp_path / "out", tmp_path / "ckpt", max_message_bytes=LIMIT)
    process = psutil.Process()
    try:
        before = process.memory_info().rss
        socket = raw_socket(handle.address)
        huge = bytes(200 << 20)  # 200 MiB in one frame
        message = Message("submit", body={"kind": "echo"}, job_id="big", blobs={"b": b"x"})
        socket.send_multipart([*encode(message), huge], copy=False)
        del huge
        time.sleep(1.0)  # the I/O thread reads the header, sees the size and drops the peer
        grown = process.memory_info().rss - before
        assert grown < 100 << 20, f"the backend grew by {grown >> 20} MiB"
        assert socket.poll(500, zmq.POLLIN) == 0  # dropped: nothing answered, nothing queued
        socket.close()
        serves_the_next_job(handle.address)
    finally:
        handle.stop()


def test_many_frames_over_the_total_limit_are_refused(tmp_path, handlers) -> None:
    handle = start_in_thread(tmp_path / "out", tmp_path / "ckpt", max_message_bytes=LIMIT)
    try:
        socket = raw_socket(handle.address)
        blobs = {f"b{i}": bytes(60_000) for i in range(50)}  # each frame under, 3 MB in all
        message = Message("submit", body={"kind": "echo"}, job_id="many", blobs=blobs)
        socket.send_multipart(encode(message))
        [error] = replies(socket, lambda seen: seen[-1]["type"] == "error")
        assert error["body"]["code"] == "message_too_large" and error["job_id"] == "many"
        socket.close()
        serves_the_next_job(handle.address)
    finally:
        handle.stop()

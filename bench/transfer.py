"""Benchmark: a 49x480x720x3 uint8 result, backend -> client over tcp loopback.

Through the real protocol (a live service fetching the stored result of a finished job and the
client decoding it) against raw pyzmq ROUTER/DEALER sending the same bytes on the same kind of
link, in the same run. Median of several repetitions. One final JSON line.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time

import numpy as np
import zmq
from videoscene_backend.pipeline import registry
from videoscene_backend.pipeline.contract import JobOutput
from videoscene_backend.service import start_in_thread
from videoscene_protocol.client import BackendClient

SHAPE = (49, 480, 720, 3)
REPEATS = 7


def protocol_times(frames: np.ndarray) -> list[float]:
    registry.HANDLERS["bench_frames"] = lambda ctx, request: JobOutput(arrays={"frames": frames})
    handle = start_in_thread(tempfile.mkdtemp())
    client = BackendClient(handle.address)
    client.connect()
    job = client.submit("bench_frames", {})
    client.wait(job, timeout_s=60)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        client.fetch(job)
        result = client.wait(job, timeout_s=60)
        assert result.arrays["frames"].shape == SHAPE
        times.append(time.perf_counter() - start)
    client.close()
    handle.stop()
    return times


def raw_times(frames: np.ndarray) -> list[float]:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = context.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hi")
    identity, _ = router.recv_multipart()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        dealer.send(b"fetch")
        router.recv_multipart()
        router.send_multipart([identity, memoryview(frames.reshape(-1))], copy=False)
        data = dealer.recv(copy=False)
        received = np.frombuffer(data.buffer, np.uint8).reshape(SHAPE)
        assert received.shape == SHAPE
        times.append(time.perf_counter() - start)
    dealer.close(linger=0)
    router.close(linger=0)
    context.term()
    return times


def main() -> None:
    frames = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    raw = statistics.median(raw_times(frames))
    protocol = statistics.median(protocol_times(frames))
    print(
        json.dumps(
            {
                "bench": "transfer",
                "bytes": frames.nbytes,
                "protocol_s": round(protocol, 4),
                "raw_s": round(raw, 4),
                "ratio": round(raw / protocol, 3),
            }
        )
    )


if __name__ == "__main__":
    main()

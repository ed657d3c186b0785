"""Benchmark: the Ray Serve pool (serve --pool ray) on a local Ray instance with CPU replicas.

1. Throughput: the same small render jobs (a coarse render of one stereo scene) submitted by
   concurrent clients to a pool of 1 and then of 2 replicas, in jobs per minute.
2. The front end's added latency: one trivial job (a 1-frame 16x16 render of a scene the
   worker already holds), median latency through the pool (1 replica) against the
   single-process service (`videoscene-backend serve` without --pool, in its own process),
   the two services' jobs alternating so that both see the same machine load.
Every worker computes on one CPU thread: Ray gives each replica one CPU (torch follows), and
the single-process service runs with OMP_NUM_THREADS=1, so the latency difference is the front
end's and Ray's, not torch's. One final JSON line.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from videoscene_backend.paths import checkpoints_dir
from videoscene_backend.scene.flythrough import default_flythrough
from videoscene_backend.scene.gaussians import PinholeCamera
from videoscene_backend.service import start_in_thread
from videoscene_protocol.client import BackendClient

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
JOBS = 12
CLIENTS = 4
FRAMES, WIDTH, HEIGHT = 8, 160, 120
TRIVIAL_REPEATS = 15
CEILING_S = 600


def photos() -> dict[str, bytes]:
    def small(name: str) -> bytes:
        image = cv2.imread(str(SAMPLES / name))
        return cv2.imencode(".png", cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA))[
            1
        ].tobytes()

    return {"image_0": small("view_a.jpg"), "image_1": small("view_b.jpg")}


def cameras(meta: dict, frames: int, width: int) -> dict[str, np.ndarray]:
    reference = [
        PinholeCamera(np.array(c["c2w"]), np.array(c["K"]), c["width"], c["height"])
        for c in meta["reference_cameras"]
    ]
    c2w, K = default_flythrough(*reference, num_frames=frames)
    K[:, :2] *= width / meta["reference_cameras"][0]["width"]
    return {"c2w": c2w, "K": K}


def build(address: str) -> dict:
    client = BackendClient(address)
    client.connect(timeout_s=120)  # the single-process service may still be starting
    built = client.wait(
        client.submit("build_scene", {"prior": "stereo"}, blobs=photos()), CEILING_S
    )
    client.close()
    return built.meta


def render_params(scene_id: str, width: int, height: int) -> dict:
    return {"scene_id": scene_id, "width": width, "height": height, "refine": False}


def throughput(address: str, meta: dict) -> float:
    """Jobs per minute for JOBS renders from CLIENTS concurrent clients, each submitting its
    next job when the last one is done (so CLIENTS jobs are in flight)."""
    arrays = cameras(meta, FRAMES, WIDTH)
    params = render_params(meta["scene_id"], WIDTH, HEIGHT)

    def artist(jobs: int) -> None:
        client = BackendClient(address)
        client.connect(timeout_s=30)
        for _ in range(jobs):
            result = client.wait(client.submit("render_video", params, arrays=arrays), CEILING_S)
            assert result.arrays["coarse"].shape == (FRAMES, HEIGHT, WIDTH, 3)
        client.close()

    def run(jobs_per_client: int) -> float:
        threads = [threading.Thread(target=artist, args=(jobs_per_client,)) for _ in range(CLIENTS)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - start

    run(1)  # untimed: every replica loads the scene and warms up
    return 60 * JOBS / run(JOBS // CLIENTS)


def trivial_latencies(addresses: list[str], metas: list[dict]) -> list[float]:
    """Median latency of the trivial job on each service, their jobs alternating."""
    clients, jobs = [], []
    for address, meta in zip(addresses, metas, strict=True):
        client = BackendClient(address)
        client.connect(timeout_s=120)
        job = (render_params(meta["scene_id"], 16, 16), cameras(meta, 1, 16))
        client.wait(client.submit("render_video", job[0], arrays=job[1]), CEILING_S)  # warm
        clients.append(client)
        jobs.append(job)
    times: list[list[float]] = [[] for _ in addresses]
    for _ in range(TRIVIAL_REPEATS):
        for index, (client, (params, arrays)) in enumerate(zip(clients, jobs, strict=True)):
            start = time.perf_counter()
            client.wait(client.submit("render_video", params, arrays=arrays), CEILING_S)
            times[index].append(time.perf_counter() - start)
    for client in clients:
        client.close()
    return [statistics.median(series) for series in times]


def single_process_service(output_dir: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    command = [sys.executable, "-m", "videoscene_backend.cli", "serve", "--bind", address]
    command += ["--output-dir", output_dir, "--log-level", "warning"]
    return subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}), address


def with_pool(replicas: int, measure):
    from videoscene_backend.service.pool import PoolConfig, start_pool

    executor = start_pool(
        PoolConfig(
            address=None,
            checkpoints_dir=checkpoints_dir(),
            replicas=replicas,
            local_cpus=max(replicas, 2),
            local_object_store_bytes=256 << 20,
        )
    )
    handle = start_in_thread(tempfile.mkdtemp(), executor=executor)
    try:
        return measure(handle.address)
    finally:
        handle.stop(timeout_s=120)


def pool_part(replicas: int, single_address: str | None) -> dict:
    """One pool size, in a process of its own (Ray is started once per process)."""

    def measure(address: str) -> dict:
        meta = build(address)
        part = {"rate": throughput(address, meta)}
        if single_address:
            single, pool = trivial_latencies(
                [single_address, address], [build(single_address), meta]
            )
            part |= {"single_latency": single, "pool_latency": pool}
        return part

    return with_pool(replicas, measure)


def run_part(replicas: int, single_address: str | None = None) -> dict:
    command = [sys.executable, __file__, "--part", str(replicas), single_address or ""]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    single, single_address = single_process_service(tempfile.mkdtemp())
    try:
        one = run_part(1, single_address)
    finally:
        single.terminate()
        single.wait(60)
    two = run_part(2)
    rate_1, rate_2 = one["rate"], two["rate"]
    single_latency, pool_latency = one["single_latency"], one["pool_latency"]
    print(
        json.dumps(
            {
                "bench": "pool",
                "cores": os.cpu_count(),
                "jobs": JOBS,
                "job": f"coarse render, {FRAMES} frames at {WIDTH}x{HEIGHT}",
                "jobs_per_min_1_replica": round(rate_1, 1),
                "jobs_per_min_2_replicas": round(rate_2, 1),
                "ratio_2_vs_1": round(rate_2 / rate_1, 3),
                "trivial_job_single_process_s": round(single_latency, 4),
                "trivial_job_pool_s": round(pool_latency, 4),
                "front_end_added_latency_s": round(pool_latency - single_latency, 4),
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--part"]:
        print(json.dumps(pool_part(int(sys.argv[2]), sys.argv[3] or None)))
    else:
        main()

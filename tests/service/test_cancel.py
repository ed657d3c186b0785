"""Cancel and shutdown take effect within 2 s, whatever the job is doing: mid-render (the real
service as a process with its default CPU renderer, the compiled one, on a path long enough to
take many seconds; the torch renderer's checks per tile batch are tested in test_cancel_points) and mid-pose-refinement (NoPoSplat with a tiny random network, in-process).

What is asserted on time: the CPU seconds the backend spends between the cancel (or SIGTERM)
and the job's end (or the process's exit) are <= 2 s. The backend's work is CPU-bound, so on a
quiet machine its wall time is at most its CPU time; on a machine shared with other jobs the
wall time stretches with the load while the CPU time does not, so this is the bound a loaded CI
machine can check. Wall times are asserted only under generous ceilings (the harness waits on
events). bench/cancel.py reports both, before and after, on the sample scene.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from videoscene_protocol.client import BackendClient, ErrorEvent, ProgressEvent, StateEvent
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .test_process import connect, free_port, start_backend

ROOT = Path(__file__).resolve().parents[2]
STOP_CPU_S = 2.0  # the bound under test
CEILING_S = 60.0  # harness ceilings (a shared, loaded machine), never the measurement
WIDTH, HEIGHT = 320, 240
GAUSSIANS = 20_000  # ~2-3 CPU s per 320x240 frame with the torch renderer, ~0.03 s compiled
RENDER_FRAMES = 600  # ~20 s of compiled rendering: the cancel lands mid-render


def heavy_scene_ply(count: int = GAUSSIANS, seed: int = 0) -> bytes:
    """Gaussians filling a box 3-5 units in front of the camera, overlapping heavily."""
    from videoscene_backend.scene.gaussians import GaussianScene
    from videoscene_backend.scene.ply import ply_bytes

    g = torch.Generator().manual_seed(seed)
    means = torch.rand(count, 3, generator=g) * torch.tensor([5.0, 3.5, 2.0])
    return ply_bytes(
        GaussianScene(
            means=means - torch.tensor([2.5, 1.75, -3.0]),
            quats=torch.nn.functional.normalize(torch.randn(count, 4, generator=g), dim=-1),
            scales=torch.rand(count, 3, generator=g) * 0.06 + 0.03,
            opacities=torch.rand(count, generator=g) * 0.5 + 0.5,
            sh=torch.randn(count, 1, 3, generator=g) * 0.6,
        )
    )


def path_arrays(count: int, width: int = WIDTH, height: int = HEIGHT) -> dict[str, np.ndarray]:
    c2w = np.tile(np.eye(4), (count, 1, 1))
    c2w[:, 0, 3] = np.linspace(-0.3, 0.3, count)
    focal = width / (2 * np.tan(np.radians(30.0)))
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    return {"c2w": c2w, "K": np.tile(K, (count, 1, 1))}


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(condition, timeout_s: float = CEILING_S, what: str = "a condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def load(client: BackendClient, ply: bytes) -> str:
    result = client.wait(client.submit("load_scene", {}, blobs={"scene.ply": ply}), CEILING_S)
    return result.meta["scene_id"]


def start_render(client: BackendClient, scene_id: str, frames: int, size=(WIDTH, HEIGHT)) -> str:
    width, height = size
    params = {"scene_id": scene_id, "width": width, "height": height, "refine": False}
    return client.submit("render_video", params, arrays=path_arrays(frames, width, height))


def wait_until_rendering(client: BackendClient, pid: int, job: str) -> None:
    """The job runs and has spent a CPU second in the renderer (its first progress event
    comes only after a whole batch, which is what this test must not wait for)."""

    def running() -> bool:
        running = client.status(timeout_s=CEILING_S)["running"]
        return running is not None and running["job_id"] == job

    wait_for(running, what="the render job to start")
    started = process_cpu_s(pid)
    wait_for(lambda: process_cpu_s(pid) - started >= 1.0, what="a CPU second of rendering")


def assert_nothing_half_written(out: Path, job: str) -> None:
    jobs = out / "jobs"
    assert not list(jobs.glob(".*.partial")), list(jobs.iterdir())
    assert not [p for p in (jobs / job).rglob("*") if p.name.endswith(".tmp")]
    assert (jobs / job / "error.json").is_file()


def serves_another_job(client: BackendClient) -> None:
    small = load(client, heavy_scene_ply(200, seed=1))
    result = client.wait(start_render(client, small, 2, (64, 48)), CEILING_S)
    assert result.meta["frames"]["ready"] == 2


@pytest.fixture()
def backend(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    process = start_backend(tmp_path, address)
    yield address, process
    if process.poll() is None:
        process.kill()
        process.wait(10)


def test_a_cancel_mid_render_ends_the_job_within_two_cpu_seconds(tmp_path, backend) -> None:
    address, process = backend
    client = connect(address)
    try:
        job = start_render(client, load(client, heavy_scene_ply()), frames=RENDER_FRAMES)
        wait_until_rendering(client, process.pid, job)
        cpu_before, sent = process_cpu_s(process.pid), time.monotonic()
        client.cancel(job)
        ended = wait_for(
            lambda: next(
                (
                    e
                    for e in client.poll(timeout_ms=20)
                    if isinstance(e, StateEvent) and e.job_id == job and e.state == "cancelled"
                ),
                None,
            ),
            what="the cancelled message",
        )
        wall_s, cpu_s = time.monotonic() - sent, process_cpu_s(process.pid) - cpu_before
        print(f"cancel mid-render: {wall_s:.2f} s wall, {cpu_s:.2f} CPU s")
        assert ended.state == "cancelled"
        assert cpu_s <= STOP_CPU_S, (cpu_s, wall_s)
        assert_nothing_half_written(tmp_path / "out", job)
        serves_another_job(client)
    finally:
        client.close()


def test_sigterm_mid_render_exits_within_two_cpu_seconds(tmp_path, backend) -> None:
    address, process = backend
    client = connect(address)
    job = start_render(client, load(client, heavy_scene_ply()), frames=RENDER_FRAMES)
    wait_until_rendering(client, process.pid, job)
    cpu_before, sent = process_cpu_s(process.pid), time.monotonic()
    process.send_signal(signal.SIGTERM)

    def reaped():
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        return (status, usage) if pid else None

    status, usage = wait_for(reaped, what="the backend to exit")
    process.returncode = os.waitstatus_to_exitcode(status)
    wall_s, cpu_s = time.monotonic() - sent, usage.ru_utime + usage.ru_stime - cpu_before
    print(f"SIGTERM mid-render: exit after {wall_s:.2f} s wall, {cpu_s:.2f} CPU s")
    assert process.returncode == 0
    assert cpu_s <= STOP_CPU_S, (cpu_s, wall_s)
    heard = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not heard:  # delivered before the socket closed
        heard = [e for e in client.poll(timeout_ms=50) if isinstance(e, ErrorEvent) and e.job_id]
    assert heard and heard[0].error.code == ErrorCode.INTERRUPTED
    client.close()

    restarted = start_backend(tmp_path, address)
    try:
        again = connect(address)
        again.fetch(job)
        with pytest.raises(VideoSceneError) as info:
            again.wait(job, timeout_s=CEILING_S)
        assert info.value.code == ErrorCode.INTERRUPTED
        assert_nothing_half_written(tmp_path / "out", job)
        serves_another_job(again)
        again.close()
    finally:
        restarted.kill()
        restarted.wait(10)


# ---- mid-pose-refinement: NoPoSplat with a tiny random network, in-process ------------------
@pytest.fixture()
def tiny_noposplat(tmp_path, monkeypatch) -> Path:
    """The checkpoints folder of a tiny random NoPoSplat whose point head predicts a known
    surface (as tests/noposplat/test_prior.py: PnP then succeeds and the refinement runs)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from noposplat.conftest import (
        TINY,
        look_at_pose,
        points_seen_by,
        predict_known_points,
        save_lightning_checkpoint,
    )
    from videoscene_backend.priors.noposplat.network import NoPoSplatNet

    size = TINY.image_size
    torch.manual_seed(0)
    root = tmp_path / "checkpoints"
    save_lightning_checkpoint(
        root / "noposplat" / "mixRe10kDl3dv_512x512.ckpt", NoPoSplatNet(TINY).state_dict()
    )
    K = np.array([[0.8 * size, 0, size / 2], [0, 0.8 * size, size / 2], [0, 0, 1.0]])
    second = look_at_pose(6.0, 0.35)
    points = np.stack([points_seen_by(np.eye(4), K, size), points_seen_by(second, K, size)])
    predict_known_points(monkeypatch, points)
    return root


def photo_blobs() -> dict[str, bytes]:
    from PIL import Image

    blobs = {}
    for index in range(2):
        pixels = (np.random.default_rng(index).random((96, 128, 3)) * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        blobs[f"image_{index}"] = buffer.getvalue()
    return blobs


def start_refining(client: BackendClient) -> str:
    """A build_scene whose pose refinement would run for minutes, once it is refining."""
    job = client.submit(
        "build_scene", {"prior": "noposplat", "pose_refine_steps": 1000}, blobs=photo_blobs()
    )

    def refining() -> bool:
        return any(
            isinstance(e, ProgressEvent) and e.job_id == job and "refining" in e.message
            for e in client.poll(timeout_ms=20)
        )

    wait_for(refining, what="the pose refinement to start")
    started = time.process_time()
    wait_for(lambda: time.process_time() - started >= 0.5, what="half a CPU second of refining")
    return job


def test_cancel_and_stop_mid_pose_refinement(tmp_path, tiny_noposplat) -> None:
    from videoscene_backend.service import start_in_thread

    out = tmp_path / "out"
    handle = start_in_thread(out, tiny_noposplat)
    client = BackendClient(handle.address, heartbeat_timeout_s=CEILING_S)
    try:
        client.connect(timeout_s=CEILING_S)
        job = start_refining(client)
        cpu_before, sent = time.process_time(), time.monotonic()
        client.cancel(job)
        with pytest.raises(VideoSceneError) as info:
            client.wait(job, timeout_s=CEILING_S)
        wall_s, cpu_s = time.monotonic() - sent, time.process_time() - cpu_before
        print(f"cancel mid-pose-refinement: {wall_s:.2f} s wall, {cpu_s:.2f} CPU s")
        assert info.value.code == ErrorCode.CANCELLED
        assert cpu_s <= STOP_CPU_S, (cpu_s, wall_s)
        assert_nothing_half_written(out, job)
        served = client.submit(
            "build_scene", {"prior": "noposplat", "pose_refine_steps": 1}, blobs=photo_blobs()
        )
        assert client.wait(served, CEILING_S).meta["prior"] == "noposplat"  # the next job

        # The shutdown path SIGTERM takes (cli.py: the handler calls service.stop()).
        job = start_refining(client)
        cpu_before, sent = time.process_time(), time.monotonic()
        handle.service.stop()
        handle.thread.join(CEILING_S)
        wall_s, cpu_s = time.monotonic() - sent, time.process_time() - cpu_before
        print(f"stop mid-pose-refinement: {wall_s:.2f} s wall, {cpu_s:.2f} CPU s")
        assert not handle.thread.is_alive()
        assert cpu_s <= STOP_CPU_S, (cpu_s, wall_s)
        with pytest.raises(VideoSceneError) as info:
            client.wait(job, timeout_s=5)
        assert info.value.code == ErrorCode.INTERRUPTED
    finally:
        client.close()
        handle.stop()
    # Restarted on the same folder (a job abandoned by a slow stop is recovered here).
    handle = start_in_thread(out, tiny_noposplat)
    client = BackendClient(handle.address, heartbeat_timeout_s=CEILING_S)
    try:
        client.connect(timeout_s=CEILING_S)
        client.fetch(job)
        with pytest.raises(VideoSceneError) as info:
            client.wait(job, timeout_s=CEILING_S)
        assert info.value.code == ErrorCode.INTERRUPTED
        assert_nothing_half_written(out, job)
    finally:
        client.close()
        handle.stop()

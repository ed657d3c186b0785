"""The backend as a real process: a killed backend is noticed, results survive a restart, and
remote use needs CurveZMQ keys."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.client import BackendClient, ErrorEvent, ProgressEvent
from videoscene_protocol.errors import ErrorCode, VideoSceneError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_backend(tmp_path: Path, address: str, *extra: str) -> subprocess.Popen:
    log = open(tmp_path / f"backend-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 (kept for the process's life)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "videoscene_backend.cli",
            "serve",
            "--bind",
            address,
            "--output-dir",
            str(tmp_path / "out"),
            "--checkpoints",
            str(tmp_path / "checkpoints"),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process


def connect(address: str, timeout_s: float = 120.0, **keys) -> BackendClient:
    deadline = time.monotonic() + timeout_s
    while True:
        client = BackendClient(address, **keys)
        try:
            client.connect(timeout_s=2.0)
            return client
        except VideoSceneError:
            client.close()
            if time.monotonic() > deadline:
                raise


@pytest.fixture()
def backend(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    process = start_backend(tmp_path, address)
    yield address, process
    if process.poll() is None:
        process.kill()
    process.wait(10)


def test_a_killed_backend_is_reported_within_five_seconds(backend) -> None:
    address, process = backend
    client = connect(address)
    os.kill(process.pid, signal.SIGKILL)
    killed = time.monotonic()
    dead = None
    while time.monotonic() - killed < 8 and dead is None:
        dead = next((e for e in client.poll(timeout_ms=100) if isinstance(e, ErrorEvent)), None)
    assert dead is not None and dead.error.code == ErrorCode.BACKEND_DEAD
    assert time.monotonic() - killed <= 4.5  # 3 s of silence (0.5 s x 6) after the last beat
    assert not client.connected
    client.close()


def test_a_finished_result_can_be_fetched_after_a_restart(tmp_path, backend) -> None:
    address, process = backend
    client = connect(address)
    job = client.submit(
        "build_scene", {"prior": "stereo"}, blobs={"image_0": b"not an image", "image_1": b"x"}
    )
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=60)
    assert info.value.code == ErrorCode.BAD_IMAGE
    client.close()
    process.terminate()
    assert process.wait(60) == 0
    restarted = start_backend(tmp_path, address)
    try:
        again = connect(address)
        again.fetch(job)
        with pytest.raises(VideoSceneError) as info:
            again.wait(job, timeout_s=10)
        assert info.value.code == ErrorCode.BAD_IMAGE  # the stored outcome, read from disk
        again.close()
    finally:
        restarted.kill()
        restarted.wait(10)


SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ABORT_TEXTS = ("terminate called", "Traceback", "Fatal Python error", "Segmentation fault")


def sample_photos() -> dict[str, bytes]:
    return {
        name: (SAMPLES / f"view_{v}.jpg").read_bytes()
        for name, v in (("image_0", "a"), ("image_1", "b"))
    }


def tiny_ply() -> bytes:
    import torch
    from videoscene_backend.scene.gaussians import GaussianScene
    from videoscene_backend.scene.ply import ply_bytes

    n = 50
    scene = GaussianScene(
        means=torch.randn(n, 3) + torch.tensor([0, 0, 3.0]),
        quats=torch.nn.functional.normalize(torch.randn(n, 4), dim=-1),
        scales=torch.full((n, 3), 0.05),
        opacities=torch.full((n,), 0.5),
        sh=torch.zeros(n, 1, 3),
    )
    return ply_bytes(scene)


def serves_a_real_job(client: BackendClient) -> None:
    result = client.wait(client.submit("load_scene", {}, blobs={"scene.ply": tiny_ply()}), 120)
    assert result.meta["num_gaussians"] == 50


def test_a_crash_with_a_queued_and_a_running_job_reads_interrupted_after_restart(
    tmp_path, backend
) -> None:
    address, process = backend
    client = connect(address)
    running = client.submit("build_scene", {"prior": "stereo"}, blobs=sample_photos())
    queued = client.submit("build_scene", {"prior": "stereo"}, blobs=sample_photos())
    deadline = time.monotonic() + 120
    started = False
    while not started and time.monotonic() < deadline:
        started = any(
            isinstance(e, ProgressEvent) and e.job_id == running for e in client.poll(100)
        )
    assert started
    jobs = tmp_path / "out" / "jobs"
    assert (jobs / f".{running}.partial").is_dir()  # its work folder, left by the crash
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    client.close()
    restarted = start_backend(tmp_path, address)
    try:
        again = connect(address, timeout_s=120)
        for job, when in ((running, "while it ran"), (queued, "before it started")):
            again.fetch(job)
            with pytest.raises(VideoSceneError) as info:
                again.wait(job, timeout_s=30)
            assert info.value.code == ErrorCode.INTERRUPTED and when in info.value.message
        assert not list(jobs.glob(".*.partial")) and not list((jobs / ".submitted").iterdir())
        serves_a_real_job(again)
        again.close()
    finally:
        restarted.terminate()
        assert restarted.wait(60) == 0


@pytest.mark.parametrize("busy", [False, True, False], ids=["idle", "mid-job", "idle-again"])
def test_sigterm_stops_serve_cleanly(tmp_path, busy: bool) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    process = start_backend(tmp_path, address)
    client = connect(address, timeout_s=120)
    serves_a_real_job(client)
    job = None
    if busy:
        job = client.submit("build_scene", {"prior": "stereo"}, blobs=sample_photos())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(isinstance(e, ProgressEvent) for e in client.poll(100)):
                break
    process.terminate()
    assert process.wait(120) == 0
    if job is not None:  # told at once, and on disk
        with pytest.raises(VideoSceneError) as info:
            client.wait(job, timeout_s=10)
        assert info.value.code == ErrorCode.INTERRUPTED
        record = json.loads((tmp_path / "out" / "jobs" / job / "error.json").read_text())
        assert record["code"] == "interrupted"
    client.close()
    log = "".join(path.read_text() for path in tmp_path.glob("backend-*.log"))
    assert "backend stopped" in log and not any(text in log for text in ABORT_TEXTS), log[-2000:]


@pytest.mark.parametrize("attempt", range(3))
def test_headless_run_exits_cleanly(tmp_path, attempt: int) -> None:
    """`run` starts the service in its own process: every thread must be gone by exit."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "videoscene_backend.cli",
            "run",
            "--image-a",
            str(SAMPLES / "view_a.jpg"),
            "--image-b",
            str(SAMPLES / "view_b.jpg"),
            "--out",
            str(tmp_path / "run"),
            "--frames",
            "3",
            "--width",
            "64",
            "--height",
            "48",
            "--no-refine",
            "--checkpoints",
            str(tmp_path / "no-checkpoints"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert not any(text in output for text in ABORT_TEXTS), output[-3000:]
    assert len(list((tmp_path / "run" / "frames").glob("*.png"))) == 3


def test_non_loopback_bind_without_keys_refuses_to_start(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "videoscene_backend.cli",
            "serve",
            "--bind",
            f"tcp://0.0.0.0:{free_port()}",
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "keygen" in result.stderr


def test_curve_keys_admit_only_authorized_clients(tmp_path) -> None:
    from videoscene_backend.service import start_in_thread
    from videoscene_backend.service.security import generate_keys

    keys = generate_keys(tmp_path / "keys")
    handle = start_in_thread(tmp_path / "out", keys_dir=tmp_path / "keys")
    try:
        plain = BackendClient(handle.address)
        with pytest.raises(VideoSceneError):
            plain.connect(timeout_s=1.5)
        plain.close()
        import zmq.auth

        stranger_public, stranger_secret = (
            k.decode()
            for k in zmq.auth.load_certificate(
                zmq.auth.create_certificates(str(tmp_path), "stranger")[1]
            )
        )
        stranger = BackendClient(
            handle.address,
            server_public_key=keys["server_public"],
            client_public_key=stranger_public,
            client_secret_key=stranger_secret,
        )
        with pytest.raises(VideoSceneError):
            stranger.connect(timeout_s=1.5)
        stranger.close()
        trusted = BackendClient(
            handle.address,
            server_public_key=keys["server_public"],
            client_public_key=keys["client_public"],
            client_secret_key=keys["client_secret"],
        )
        assert trusted.connect(timeout_s=5)["version"] == PROTOCOL_VERSION
        trusted.close()
    finally:
        handle.stop()

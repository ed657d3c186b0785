"""The backend as a real process: a killed backend is noticed, results survive a restart, and
remote use needs CurveZMQ keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.client import BackendClient, ErrorEvent
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


def connect(address: str, timeout_s: float = 20.0, **keys) -> BackendClient:
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
    assert time.monotonic() - killed <= 5.5
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
    process.wait(10)
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

"""Starting a pool: a dead Ray cluster is a clear error naming its address, an unknown --pool
is refused, and without --pool the backend never imports Ray. Each runs in a fresh process."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from videoscene_backend.service.pool import parse_pool_option
from videoscene_protocol.errors import ErrorCode, VideoSceneError

CLI = [sys.executable, "-m", "videoscene_backend.cli"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


def test_a_dead_cluster_at_start_up_is_an_error_naming_the_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    done = subprocess.run(
        [
            *CLI,
            "serve",
            "--pool",
            f"ray:{address}",
            "--bind",
            "tcp://127.0.0.1:*",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"Could not connect to the Ray cluster at {address}" in done.stderr
    assert "hint: Start the head node first" in done.stderr


@pytest.mark.parametrize("value", ["dask", "ray:", "rayy:1.2.3.4:6379"])
def test_an_unknown_pool_is_refused(value: str) -> None:
    with pytest.raises(VideoSceneError) as info:
        parse_pool_option(value)
    assert info.value.code == ErrorCode.BAD_PARAMS and "--pool ray" in info.value.hint


def test_pool_addresses() -> None:
    assert parse_pool_option("ray") is None
    assert parse_pool_option("ray:10.0.0.1:6379") == "10.0.0.1:6379"
    assert parse_pool_option("ray:auto") == "auto"


def test_without_pool_ray_is_never_imported(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from videoscene_backend.cli import build_parser
        from videoscene_backend.service import start_in_thread
        from videoscene_protocol.client import BackendClient

        args = build_parser().parse_args(["serve"])
        assert args.pool is None and args.replicas is None
        handle = start_in_thread({str(tmp_path / "out")!r})
        client = BackendClient(handle.address)
        client.connect(timeout_s=30)
        status = client.status(timeout_s=30)
        assert "pool" not in status and status["device"], status
        client.close()
        handle.stop()
        assert not [name for name in sys.modules if name == "ray" or name.startswith("ray.")]
        print("no ray")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "no ray" in done.stdout, done.stderr[-2000:]


def test_the_pool_refuses_to_start_without_token_auth(tmp_path: Path) -> None:
    """RAY_AUTH_MODE=disabled: refused with the commands that fix it, before Ray starts; the
    same folder then serves a plain (pool-less) backend at once."""
    import os

    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    out = tmp_path / "out"
    common = ["--bind", "tcp://127.0.0.1:*", "--output-dir", str(out)]
    done = subprocess.run(
        [*CLI, "serve", "--pool", "ray", *common],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "without token authentication" in done.stderr
    assert "ray get-auth-token --generate" in done.stderr and "chmod 600" in done.stderr
    from videoscene_backend.service import start_in_thread
    from videoscene_protocol.client import BackendClient

    handle = start_in_thread(out, tmp_path / "ckpt")
    try:
        client = BackendClient(handle.address)
        assert client.connect()["server"] == "videoscene-backend"
        client.close()
    finally:
        handle.stop()

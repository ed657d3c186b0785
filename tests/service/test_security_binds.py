"""Binds mean what they say: one literal address, checked again once bound; keyless only on
loopback. Each refusal comes before anything listens, and a good service still serves after."""

from __future__ import annotations

import socket

import pytest
from videoscene_backend.service import start_in_thread
from videoscene_backend.service.security import endpoint_is_loopback, parse_bind
from videoscene_protocol.client import BackendClient
from videoscene_protocol.errors import ErrorCode, VideoSceneError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def listening(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@pytest.mark.parametrize(
    "bind",
    [
        "tcp://127.0.0.1:0;127.0.0.3:{port}",  # source;bind: ZeroMQ would listen on 127.0.0.3
        "tcp://127.0.0.1:0;0.0.0.0:{port}",
        "tcp://127.0.0.1:0;*:{port}",
        "tcp://127.0.0.1:0;eth0:{port}",
        "tcp://lo:{port}",  # interface names
        "tcp://eth0:{port}",
        "tcp://*:{port}",
        "tcp://example.com:{port}",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:99999",
        "udp://127.0.0.1:{port}",
        "ipc://@abstract",
    ],
)
def test_crafted_binds_are_refused_before_listening(tmp_path, handlers, bind) -> None:
    port = free_port()
    with pytest.raises(VideoSceneError) as info:
        start_in_thread(tmp_path / "out", tmp_path / "ckpt", bind=bind.format(port=port))
    assert info.value.code == ErrorCode.BAD_BIND and info.value.hint
    for host in ("127.0.0.1", "127.0.0.3"):
        assert not listening(host, port)
    # the same folder serves at once with a good bind (the refused start left no lock behind)
    handle = start_in_thread(tmp_path / "out", tmp_path / "ckpt")
    try:
        client = BackendClient(handle.address)
        client.connect()
        assert client.wait(client.submit("echo", {"n": 1}), timeout_s=20).meta["params"] == {"n": 1}
        client.close()
    finally:
        handle.stop()


def test_keyless_binds_off_loopback_are_refused() -> None:
    for bind in ("tcp://0.0.0.0:5557", "tcp://[::]:5557", "tcp://192.168.1.2:5557"):
        assert not parse_bind(bind).loopback
    for bind in ("tcp://127.0.0.1:*", "tcp://[::1]:5557", "tcp://localhost:5557", "ipc:///x/s"):
        assert parse_bind(bind).loopback


def test_the_bound_endpoint_is_checked_with_ipaddress() -> None:
    assert endpoint_is_loopback("tcp://127.0.0.1:4000")
    assert endpoint_is_loopback("tcp://[::1]:4000")
    assert not endpoint_is_loopback("tcp://0.0.0.0:4000")
    assert not endpoint_is_loopback("tcp://127.0.0.1:0;127.0.0.3:4000")

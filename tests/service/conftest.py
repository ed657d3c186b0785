"""A live backend in a thread, with test handlers registered for the duration of a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from videoscene_backend.pipeline import registry
from videoscene_backend.pipeline.contract import JobOutput
from videoscene_backend.service import ServiceHandle, start_in_thread
from videoscene_protocol.client import BackendClient

RELEASE = threading.Event()


def slow_job(ctx, request) -> JobOutput:
    """Reports progress until released (or 10 s), checking for cancellation between steps."""
    deadline = time.monotonic() + 10
    step = 0
    while not RELEASE.is_set() and time.monotonic() < deadline:
        ctx.progress("render", min(step / 100, 1.0), f"step {step}")
        ctx.check_cancelled()
        time.sleep(0.05)
        step += 1
    return JobOutput(meta={"steps": step})


def echo_job(ctx, request) -> JobOutput:
    (ctx.work_dir / "note.txt").write_text("hello")
    frames = np.full((3, 4, 5, 3), 7, np.uint8)
    return JobOutput(
        meta={"params": request.params},
        arrays={"frames": frames, **request.arrays},
        blobs=dict(request.blobs),
        files=["note.txt"],
    )


def crashing_job(ctx, request) -> JobOutput:
    raise RuntimeError("boom")


@pytest.fixture()
def handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    RELEASE.clear()
    monkeypatch.setitem(registry.HANDLERS, "slow", slow_job)
    monkeypatch.setitem(registry.HANDLERS, "echo", echo_job)
    monkeypatch.setitem(registry.HANDLERS, "crash", crashing_job)


@pytest.fixture()
def service(tmp_path, handlers) -> Iterator[ServiceHandle]:
    handle = start_in_thread(tmp_path / "out", tmp_path / "checkpoints", max_queue=2)
    yield handle
    RELEASE.set()
    handle.stop()


@pytest.fixture()
def client(service: ServiceHandle) -> Iterator[BackendClient]:
    client = BackendClient(service.address)
    client.connect()
    yield client
    client.close()

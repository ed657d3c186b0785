"""Budgets: a job over the pixel budget or beyond the free disk is refused at submit, a job
past the wall-time limit or filling the disk mid-run is stopped, old jobs are removed, queued
inputs are bounded; each refusal is named, and the service serves the next job."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from client_events import events_until
from videoscene_backend.pipeline import registry
from videoscene_backend.pipeline.contract import JobOutput
from videoscene_backend.service import start_in_thread
from videoscene_backend.service.budgets import Budgets
from videoscene_protocol.client import BackendClient, ErrorEvent, ProgressEvent
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .conftest import RELEASE


def cameras(count: int) -> dict[str, np.ndarray]:
    c2w = np.repeat(np.eye(4)[None], count, axis=0)
    K = np.repeat(np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])[None], count, axis=0)
    return {"c2w": c2w, "K": K}


def render(client: BackendClient, count: int, size: int) -> str:
    params = {"scene_id": "nosuchscene", "width": size, "height": size}
    return client.submit("render_video", params, arrays=cameras(count))


def refusal(client: BackendClient, job_id: str) -> VideoSceneError:
    events = events_until(client, lambda e: isinstance(e, ErrorEvent) and e.job_id == job_id)
    return events[-1].error


def serves_the_next_job(client: BackendClient) -> None:
    assert client.wait(client.submit("echo", {}), timeout_s=20).files == ["note.txt"]


@pytest.fixture()
def started(tmp_path, handlers):
    handles = []

    def start(**budgets):
        handle = start_in_thread(tmp_path / "out", tmp_path / "ckpt", budgets=Budgets(**budgets))
        client = BackendClient(handle.address)
        client.connect()
        handles.append((handle, client))
        return handle, client

    yield start
    RELEASE.set()
    for handle, client in handles:
        client.close()
        handle.stop()


def test_a_render_over_the_pixel_budget_is_refused_at_submit(started) -> None:
    _, client = started(max_job_megapixels=100)
    error = refusal(client, render(client, 10_000, 4096))  # 167,772 megapixels
    assert error.code == ErrorCode.OVER_BUDGET and "--max-job-megapixels" in error.hint
    assert "167,772 megapixels" in error.message
    serves_the_next_job(client)


def test_a_render_the_disk_cannot_hold_is_refused_at_submit(started) -> None:
    _, client = started(max_job_megapixels=0, min_free_disk_mib=0)  # no pixel budget
    error = refusal(client, render(client, 10_000, 4096))  # ~500 TB of PNGs, estimated
    assert error.code == ErrorCode.DISK_FULL and "MiB free" in error.message and error.hint
    serves_the_next_job(client)


def windowed_job(ctx, request) -> JobOutput:
    """Two windows: the second starts once the test lets it (after shrinking the disk)."""
    (ctx.work_dir / "frame0").write_bytes(b"x")
    ctx.frames_ready({"first": 0, "count": 1})
    RELEASE.wait(10)
    ctx.frames_ready({"first": 1, "count": 1})
    return JobOutput(meta={"windows": 2})


def test_a_full_disk_stops_a_running_job_after_its_window(started, monkeypatch) -> None:
    monkeypatch.setitem(registry.HANDLERS, "windowed", windowed_job)
    handle, client = started()
    job = client.submit("windowed", {})
    events_until(
        client, lambda e: getattr(e, "job_id", None) == job and "frames" in type(e).__name__.lower()
    )
    service = handle.service
    normal = service.budgets
    service.budgets = Budgets(min_free_disk_mib=1e12)  # the disk "fills up" mid-job
    RELEASE.set()
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=20)
    assert info.value.code == ErrorCode.DISK_FULL
    service.budgets = normal
    serves_the_next_job(client)


def test_a_job_past_the_wall_time_limit_is_stopped(started) -> None:
    _, client = started(max_job_seconds=0.5)
    job = client.submit("slow", {})  # reports progress until released (or 10 s)
    started_at = time.monotonic()
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=20)
    assert info.value.code == ErrorCode.TIME_LIMIT and "--max-job-seconds" in info.value.hint
    assert time.monotonic() - started_at < 8
    serves_the_next_job(client)


def test_old_jobs_are_removed_at_start_up(started, tmp_path) -> None:
    handle, client = started(keep_days=7)
    old, recent = (client.wait(client.submit("echo", {}), timeout_s=20).job_id for _ in range(2))
    client.close()
    handle.stop()
    eight_days_ago = time.time() - 8 * 86400
    for name in ("result.json",):
        os.utime(tmp_path / "out" / "jobs" / old / name, (eight_days_ago, eight_days_ago))
    _, client = started(keep_days=7)
    deadline = time.monotonic() + 20
    while (tmp_path / "out" / "jobs" / old).exists():
        assert time.monotonic() < deadline, "the old job was not removed"
        time.sleep(0.05)
    assert (tmp_path / "out" / "jobs" / recent / "result.json").is_file()
    client.fetch(old)
    assert refusal(client, old).code == ErrorCode.UNKNOWN_JOB
    serves_the_next_job(client)


def test_queued_inputs_are_bounded_in_memory(started) -> None:
    _, client = started(max_queued_input_mib=1)
    running = client.submit("slow", {})
    events_until(client, lambda e: isinstance(e, ProgressEvent) and e.job_id == running)
    first = client.submit("slow", {}, blobs={"data": bytes(700_000)})
    big = client.submit("slow", {}, blobs={"data": bytes(700_000)})
    error = refusal(client, big)
    assert error.code == ErrorCode.QUEUE_FULL and "--max-queued-input-mib" in error.hint
    client.cancel(first)
    RELEASE.set()
    serves_the_next_job(client)

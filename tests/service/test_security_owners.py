"""Jobs belong to the client key that submitted them: another artist's key cannot see, fetch,
fetch frames of, or cancel them (they read as unknown), an admin key sees all, the per-client
quota holds, and the server's paths and node details stay hidden from artists."""

from __future__ import annotations

import pytest
from client_events import events_until
from videoscene_backend.pipeline import registry
from videoscene_backend.pipeline.contract import JobOutput
from videoscene_backend.service import start_in_thread
from videoscene_backend.service.security import generate_keys
from videoscene_protocol.client import BackendClient, ErrorEvent, ProgressEvent
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .conftest import RELEASE


def keyed_client(address: str, keys: dict) -> BackendClient:
    client = BackendClient(
        address,
        server_public_key=keys["server_public"],
        client_public_key=keys["client_public"],
        client_secret_key=keys["client_secret"],
    )
    client.connect(timeout_s=10)
    return client


@pytest.fixture()
def keyed(tmp_path, handlers):
    keys = {name: generate_keys(tmp_path / "keys", name) for name in ("ana", "ben")}
    keys["boss"] = generate_keys(tmp_path / "keys", "boss", admin=True)
    handle = start_in_thread(
        tmp_path / "out", tmp_path / "ckpt", keys_dir=tmp_path / "keys", max_queue_per_client=2
    )
    clients = {name: keyed_client(handle.address, pair) for name, pair in keys.items()}
    yield clients
    RELEASE.set()
    for client in clients.values():
        client.close()
    handle.stop()


def refused(client: BackendClient, job_id: str, send) -> VideoSceneError:
    send()
    events = events_until(client, lambda e: isinstance(e, ErrorEvent) and e.job_id == job_id)
    return events[-1].error


def test_another_key_cannot_see_fetch_or_cancel_a_job(keyed) -> None:
    ana, ben, boss = keyed["ana"], keyed["ben"], keyed["boss"]
    job = ana.submit("slow", {})
    events_until(ana, lambda e: isinstance(e, ProgressEvent) and e.job_id == job)
    status = ben.status()
    assert job not in str(status) and status["running"] is None and status["busy"]
    assert "output_dir" not in status
    for send in (lambda: ben.fetch(job), lambda: ben.cancel(job)):
        assert refused(ben, job, send).code == ErrorCode.UNKNOWN_JOB
    with pytest.raises(VideoSceneError) as info:
        ben.fetch_frames(job, 0, 1)
    assert info.value.code == ErrorCode.UNKNOWN_JOB
    assert boss.status()["running"]["job_id"] == job  # an admin key sees every job
    assert ana.status()["running"]["job_id"] == job
    RELEASE.set()
    done = ana.wait(job, timeout_s=20)  # ben's cancel did nothing; the job finished
    assert done.meta["steps"] > 0 and done.job_dir == ""  # no server path to a remote client
    assert refused(ben, job, lambda: ben.fetch(job)).code == ErrorCode.UNKNOWN_JOB  # on disk
    ana.fetch(job)
    assert ana.wait(job, timeout_s=20).meta == done.meta
    # ben still gets his own jobs served
    assert ben.wait(ben.submit("echo", {}), timeout_s=20).files == ["note.txt"]


def test_one_client_cannot_fill_the_queue(keyed) -> None:
    ana, ben = keyed["ana"], keyed["ben"]
    held = [ana.submit("slow", {}), ana.submit("slow", {})]
    third = ana.submit("slow", {})
    events = events_until(ana, lambda e: isinstance(e, ErrorEvent) and e.job_id == third)
    assert events[-1].error.code == ErrorCode.QUOTA_EXCEEDED and events[-1].error.hint
    ana.cancel(held[1])
    RELEASE.set()
    assert ben.wait(ben.submit("echo", {}), timeout_s=20).files == ["note.txt"]
    assert ana.wait(held[0], timeout_s=20).meta["steps"] >= 0


def scene_job(ctx, request) -> JobOutput:
    return JobOutput(meta={"scene_id": "anas_scene"})


def test_another_key_cannot_render_or_take_over_a_scene(keyed, monkeypatch) -> None:
    monkeypatch.setitem(registry.HANDLERS, "make_scene", scene_job)
    ana, ben = keyed["ana"], keyed["ben"]
    assert ana.wait(ana.submit("make_scene", {}), timeout_s=20).meta["scene_id"] == "anas_scene"
    uses = ben.submit("echo", {"scene_id": "anas_scene"})
    assert refused(ben, uses, lambda: None).code == ErrorCode.UNKNOWN_SCENE
    takes = ben.submit("load_scene", {"scene_id": "anas_scene"}, blobs={"scene.ply": b"ply"})
    error = refused(ben, takes, lambda: None)
    assert error.code == ErrorCode.BAD_PARAMS and "another client" in error.message
    mine = ana.wait(ana.submit("echo", {"scene_id": "anas_scene"}), timeout_s=20)
    assert mine.meta == {"params": {"scene_id": "anas_scene"}}
    assert ben.wait(ben.submit("echo", {}), timeout_s=20).files == ["note.txt"]

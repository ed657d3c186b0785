"""The Ray Serve pool behind the unchanged front end: concurrent clients, scenes shared between
replicas, a replica killed mid-job, cancel routed to the replica running the job, status and
release_models across replicas. Waits use long ceilings; nothing is timed."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from videoscene_backend.pipeline.contract import JobRequest
from videoscene_backend.pipeline.scene_jobs import build_scene, render_video
from videoscene_backend.scene.flythrough import default_flythrough
from videoscene_backend.scene.gaussians import PinholeCamera
from videoscene_protocol.client import BackendClient
from videoscene_protocol.errors import ErrorCode, VideoSceneError

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
JOB_CEILING_S = 300.0
CLIENTS = 8
REFINED = 2  # clients whose render also runs the (tiny) video model; the rest render coarse
FRAMES, WIDTH, HEIGHT = 9, 96, 64  # the tiny video model's own size


def _photo(name: str, scale: float = 0.5) -> bytes:
    image = cv2.imread(str(SAMPLES / name))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".png", small)[1].tobytes()


PHOTOS = {"image_0": _photo("view_a.jpg"), "image_1": _photo("view_b.jpg")}


def _path(meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """A short flythrough between the reference cameras, at the tiny video model's size."""
    cameras = [
        PinholeCamera(np.array(c["c2w"]), np.array(c["K"]), c["width"], c["height"])
        for c in meta["reference_cameras"]
    ]
    c2w, K = default_flythrough(*cameras, num_frames=FRAMES)
    K[:, :2] *= WIDTH / meta["reference_cameras"][0]["width"]
    return c2w, K


def _render_params(scene_id: str, refine: bool) -> dict:
    return {"scene_id": scene_id, "width": WIDTH, "height": HEIGHT, "refine": refine, "seed": 5}


def _status_until(client: BackendClient, predicate, what: str, ceiling_s: float = 60.0) -> dict:
    deadline = time.monotonic() + ceiling_s
    while time.monotonic() < deadline:
        status = client.status(timeout_s=10)
        if predicate(status):
            return status
        client.poll(timeout_ms=200)
    raise AssertionError(f"status never showed {what}: {status}")


def _replica_running(status: dict, job_id: str) -> dict | None:
    return next(
        (r for r in status["pool"]["replicas"] if (r["running"] or {}).get("job_id") == job_id),
        None,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, job_context) -> dict:
    """The single-process handlers on the same photos: what every pool result must equal."""
    ctx = job_context(tmp_path_factory.mktemp("reference"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a CPU replica; also spares this busy 2-core machine
    try:
        built = build_scene(
            ctx, JobRequest("ref", "build_scene", {"prior": "stereo"}, blobs=PHOTOS)
        )
        c2w, K = _path(built.meta)
        request = JobRequest(
            "r",
            "render_video",
            _render_params(built.meta["scene_id"], refine=False),
            arrays={"c2w": c2w, "K": K},
        )
        coarse = render_video(ctx, request).arrays["coarse"]
    finally:
        torch.set_num_threads(threads)
    return {"meta": built.meta, "coarse": coarse}


def test_eight_clients_build_and_render_concurrently(pool, reference) -> None:
    outcomes: dict[int, object] = {}

    def artist(index: int) -> None:
        client = BackendClient(pool.address)
        try:
            client.connect(timeout_s=30)
            built = client.wait(
                client.submit("build_scene", {"prior": "stereo"}, blobs=PHOTOS),
                timeout_s=JOB_CEILING_S,
            )
            c2w, K = _path(built.meta)
            rendered = client.wait(
                client.submit(
                    "render_video",
                    _render_params(built.meta["scene_id"], refine=index < REFINED),
                    arrays={"c2w": c2w, "K": K},
                ),
                timeout_s=JOB_CEILING_S,
            )
            outcomes[index] = (built, rendered)
        except Exception as exc:  # reported by the assertion below
            outcomes[index] = exc
        finally:
            client.close()

    threads = [threading.Thread(target=artist, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * JOB_CEILING_S)
    failures = {i: o for i, o in outcomes.items() if isinstance(o, Exception)}
    assert len(outcomes) == CLIENTS and not failures, failures
    scene_ids = set()
    for index, (built, rendered) in outcomes.items():
        assert built.meta["num_gaussians"] == reference["meta"]["num_gaussians"]
        assert built.blobs["scene.ply"][:3] == b"ply" and Path(built.job_dir, "scene.ply").is_file()
        scene_ids.add(built.meta["scene_id"])
        coarse = rendered.arrays["coarse"]
        expected = reference["coarse"]
        assert coarse.shape == expected.shape == (FRAMES, HEIGHT, WIDTH, 3)
        difference = np.abs(coarse.astype(int) - expected.astype(int))
        assert difference.max() <= 2 and difference.mean() < 0.05, (index, difference.max())
        frames = rendered.arrays["frames"]
        if index < REFINED:
            assert rendered.meta["refined"] is True, rendered.meta["refine_message"]
            assert frames.shape == coarse.shape and not np.array_equal(frames, coarse)
        else:
            assert rendered.meta["refined"] is False and np.array_equal(frames, coarse)
        assert (Path(rendered.job_dir) / "result.json").is_file()
    assert len(scene_ids) == CLIENTS


def _build(client: BackendClient) -> object:
    job = client.submit("build_scene", {"prior": "stereo"}, blobs=PHOTOS)
    return client.wait(job, timeout_s=JOB_CEILING_S)


def _slow(client: BackendClient, until: Path, **params) -> str:
    return client.submit("slow", {"until": str(until), **params})


def _wait_running(client: BackendClient, job_id: str) -> dict:
    status = _status_until(
        client, lambda s: _replica_running(s, job_id) is not None, f"{job_id} running"
    )
    return _replica_running(status, job_id)


def test_scene_built_on_one_replica_is_rendered_on_another(client, reference, tmp_path) -> None:
    built = _build(client)
    scene_id = built.meta["scene_id"]
    status = _status_until(
        client,
        lambda s: sum(scene_id in r["scenes"] for r in s["pool"]["replicas"]) == 1,
        f"scene {scene_id} held by one replica",
    )
    holder = next(r for r in status["pool"]["replicas"] if scene_id in r["scenes"])
    assert scene_id in status["scenes"]  # the front end keeps its PLY for the other replicas
    # A job naming the scene goes to the replica holding it (Serve's multiplexed routing) and
    # keeps it busy, so the render must go to the other replica, which loads the scene.
    # Serve's routers learn which replica holds a scene shortly after it is built; until then
    # a job may go to either replica. Three tries: only a pool without affinity misses them all.
    for _attempt in range(3):
        busy = _slow(client, tmp_path / "release", scene_id=scene_id)
        if _wait_running(client, busy)["replica"] == holder["replica"]:
            break
        client.cancel(busy)
        with pytest.raises(VideoSceneError):
            client.wait(busy, timeout_s=JOB_CEILING_S)
    else:
        raise AssertionError(f"3 jobs naming scene {scene_id} all missed its replica")
    c2w, K = _path(built.meta)
    rendered = client.wait(
        client.submit("render_video", _render_params(scene_id, False), arrays={"c2w": c2w, "K": K}),
        timeout_s=JOB_CEILING_S,
    )
    difference = np.abs(rendered.arrays["coarse"].astype(int) - reference["coarse"].astype(int))
    assert difference.max() <= 2 and difference.mean() < 0.05
    status = _status_until(
        client,
        lambda s: all(scene_id in r["scenes"] for r in s["pool"]["replicas"]),
        f"scene {scene_id} on both replicas",
    )
    assert len(status["pool"]["replicas"]) == 2
    (tmp_path / "release").touch()
    assert client.wait(busy, timeout_s=JOB_CEILING_S).meta["pid"] == holder["pid"]


def test_cancel_reaches_the_replica_running_the_job(client, tmp_path) -> None:
    first, second = _slow(client, tmp_path / "release"), _slow(client, tmp_path / "release")
    on_first, on_second = _wait_running(client, first), _wait_running(client, second)
    assert on_first["replica"] != on_second["replica"]
    status = client.status(timeout_s=10)
    assert status["queue"] == [] and status["running"]["job_id"] in (first, second)
    client.cancel(first)
    with pytest.raises(VideoSceneError) as info:
        client.wait(first, timeout_s=JOB_CEILING_S)
    assert info.value.code == ErrorCode.CANCELLED
    # The handler on the first job's replica saw the cancellation; the other job runs on.
    marker = tmp_path / f"cancelled-{first}"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        client.poll(timeout_ms=200)
    assert marker.read_text() == str(on_first["pid"])
    assert not (tmp_path / f"cancelled-{second}").exists()
    status = client.status(timeout_s=10)
    assert _replica_running(status, second)["replica"] == on_second["replica"]
    (tmp_path / "release").touch()
    result = client.wait(second, timeout_s=JOB_CEILING_S)
    assert result.meta["pid"] == on_second["pid"]
    assert (Path(result.job_dir) / "note.txt").read_text().endswith("steps")


def test_status_shows_each_replica_and_release_models_reaches_all(client) -> None:
    status = _status_until(
        client,
        lambda s: any(r["models"] for r in s["pool"]["replicas"]),
        "a replica with a loaded model (the refined renders load the video model)",
    )
    assert status["pool"]["replicas_wanted"] == 2 and "ray pool" in status["device"]
    replicas = status["pool"]["replicas"]
    assert len({r["pid"] for r in replicas}) == 2 and all(r["running"] is None for r in replicas)
    loaded = sorted({key for r in replicas for key in r["models"]})
    assert status["models"] == loaded
    released = client.release_models(timeout_s=60)["released"]
    assert sorted(released) == loaded
    _status_until(
        client,
        lambda s: not any(r["models"] for r in s["pool"]["replicas"]),
        "no models after release_models",
    )


def test_a_killed_replica_retries_the_job_once_then_reports_a_clear_error(client, tmp_path):
    """Runs last: it kills replicas (Ray Serve starts new ones)."""
    job = _slow(client, tmp_path / "release")
    first = _wait_running(client, job)
    os.kill(first["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    status = _status_until(  # the retry, on another replica
        client,
        lambda s: (_replica_running(s, job) or first)["pid"] != first["pid"],
        f"{job} running again on another replica",
    )
    assert time.monotonic() - killed_at < 10
    second = _replica_running(status, job)
    other = _slow(client, tmp_path / "release-other")  # queued while the pool is one short
    os.kill(second["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    with pytest.raises(VideoSceneError) as info:
        client.wait(job, timeout_s=30)
    assert time.monotonic() - killed_at < 10
    assert info.value.code == ErrorCode.INTERNAL and "attempt 2 of 2" in info.value.message
    assert (Path(client.status()["output_dir"]) / "jobs" / job / "error.json").is_file()
    # The pool goes on: Ray Serve replaces the dead replicas and the queued job runs.
    (tmp_path / "release-other").touch()
    assert client.wait(other, timeout_s=JOB_CEILING_S).meta["pid"] not in (
        first["pid"],
        second["pid"],
    )

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
from videoscene_backend.pipeline.contract import JobRequest
from videoscene_backend.pipeline.scene_jobs import build_scene, render_video
from videoscene_backend.scene.flythrough import default_flythrough
from videoscene_backend.scene.gaussians import PinholeCamera
from videoscene_protocol.client import BackendClient, ProgressEvent
from videoscene_protocol.errors import ErrorCode, VideoSceneError

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
JOB_CEILING_S = 300.0
CLIENTS = 8
FRAMES, WIDTH, HEIGHT = 9, 96, 64  # the tiny video model's own size


def _photo(name: str, scale: float = 0.5) -> bytes:
    image = cv2.imread(str(SAMPLES / name))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.imencode(".png", small)[1].tobytes()


PHOTOS = {"image_0": _photo("view_a.jpg"), "image_1": _photo("view_b.jpg")}


def _path(meta: dict, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A short flythrough between the reference cameras, moved sideways by `shift`."""
    cameras = [
        PinholeCamera(np.array(c["c2w"]), np.array(c["K"]), c["width"], c["height"])
        for c in meta["reference_cameras"]
    ]
    c2w, K = default_flythrough(*cameras, num_frames=FRAMES)
    c2w[:, 0, 3] += shift
    K = K.copy()
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
    built = build_scene(ctx, JobRequest("ref", "build_scene", {"prior": "stereo"}, blobs=PHOTOS))
    coarse = {}
    for index in range(CLIENTS):
        c2w, K = _path(built.meta, 0.01 * index)
        request = JobRequest(
            f"r{index}",
            "render_video",
            _render_params(built.meta["scene_id"], refine=False),
            arrays={"c2w": c2w, "K": K},
        )
        coarse[index] = render_video(ctx, request).arrays["coarse"]
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
            c2w, K = _path(built.meta, 0.01 * index)
            rendered = client.wait(
                client.submit(
                    "render_video",
                    _render_params(built.meta["scene_id"], refine=True),
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
        expected = reference["coarse"][index]
        assert coarse.shape == expected.shape == (FRAMES, HEIGHT, WIDTH, 3)
        difference = np.abs(coarse.astype(int) - expected.astype(int))
        assert difference.max() <= 2 and difference.mean() < 0.05, (index, difference.max())
        assert rendered.meta["refined"] is True, rendered.meta["refine_message"]
        frames = rendered.arrays["frames"]
        assert frames.shape == coarse.shape and not np.array_equal(frames, coarse)
        assert (Path(rendered.job_dir) / "result.json").is_file()
    assert len(scene_ids) == CLIENTS

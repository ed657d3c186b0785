"""The front end's side of the pool: a JobExecutor whose jobs run on Ray Serve replicas.

Each job is one streaming request; a thread per job reads its events and replays them on the
job's front-end context (progress, files, whatever the handler publishes), and the service
writes the result atomically, exactly as for a local job. Queueing and routing are Ray Serve's:
the request waits in the handle's queue until a replica is free, and render jobs carry their
scene id as the multiplexed model id, so Serve prefers a replica that already holds the scene.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, TaskCancelledError
from ray.serve.exceptions import RequestCancelledError
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import ID_PATTERN

from ...pipeline.contract import JobOutput
from ..executor import JobHost, ReleaseReply
from ..jobs import JobContextImpl
from . import cluster
from .transfer import write_files

if TYPE_CHECKING:
    from ..jobs import Job

log = logging.getLogger("videoscene.pool")

ATTEMPTS = 2  # a job whose replica dies is run once more on another replica
FRONT_END_SCENES = 64  # scenes whose PLY the front end keeps in the object store
FRONT_END_SCENE_BYTES = 4 << 30  # and at most this many bytes of them (the newest always kept)
STATUS_REFRESH_S = 1.0
RELEASE_WAIT_S = 10.0
REPLICA_LOST = (RayActorError, ActorUnavailableError)


class SceneRefs:
    """Scene id -> ObjectRef of its PLY, owned by the front end so it outlives any replica."""

    def __init__(
        self, capacity: int = FRONT_END_SCENES, max_bytes: int = FRONT_END_SCENE_BYTES
    ) -> None:
        self._refs: OrderedDict[str, Any] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def put(self, scene_id: str, ply: bytes) -> None:
        ref = ray.put(ply)
        with self._lock:
            self._refs[scene_id] = ref
            self._sizes[scene_id] = len(ply)
            self._refs.move_to_end(scene_id)
            # bounded in count and in bytes (the newest always stays): clients' PLYs are up to
            # the message limit each, and pinned objects are not spilled away by Ray
            while len(self._refs) > 1 and (
                len(self._refs) > self._capacity or sum(self._sizes.values()) > self._max_bytes
            ):
                oldest, _ = self._refs.popitem(last=False)
                self._sizes.pop(oldest, None)

    def get(self, scene_id: str) -> Any | None:
        with self._lock:
            return self._refs.get(scene_id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._refs)


class RayPoolExecutor:
    def __init__(self, config: cluster.PoolConfig) -> None:
        """Connects to Ray and deploys the replicas (VideoSceneError when it cannot)."""
        self.config = config
        cluster.connect(config)
        self._handle, self._board, self.replicas = cluster.deploy(config)
        self._host: JobHost | None = None
        self._scenes = SceneRefs()
        self._responses: dict[str, Any] = {}  # job id -> its streaming response
        self._placement: dict[str, dict[str, Any]] = {}  # running job id -> its replica
        self._jobs: dict[str, Job] = {}
        self._snapshot: dict[str, dict[str, Any]] = {}
        self._stopping = threading.Event()
        self._forward = sorted(
            name
            for name, member in inspect.getmembers(JobContextImpl, inspect.isfunction)
            if not name.startswith("_") and name != "check_cancelled"
        )

    # ---- JobExecutor -------------------------------------------------------------------
    def start(self, host: JobHost) -> None:
        self._host = host
        threading.Thread(
            target=self._refresh_status, name="videoscene-pool-status", daemon=True
        ).start()

    def submit(self, job: Job) -> None:
        self._jobs[job.job_id] = job
        threading.Thread(target=self._drive, args=(job,), name=f"pool-{job.job_id[:8]}").start()

    def cancel(self, job: Job) -> None:
        response = self._responses.get(job.job_id)
        if response is not None:
            response.cancel()  # Serve delivers it to the replica running the request

    def release_models(self, reply: ReleaseReply) -> None:
        def release() -> None:
            try:
                sequence, expected = ray.get(self._board.post.remote("release_models"))
                answers = ray.get(self._board.answers.remote(sequence, expected, RELEASE_WAIT_S))
            except Exception as exc:
                log.warning("release_models did not reach the pool: %s", exc)
                answers = {}
            missing = sorted(set(expected) - set(answers)) if answers else []
            if missing:
                log.warning("release_models: no answer from replicas %s", missing)
            reply(sorted({key for released in answers.values() for key in released or []}))

        threading.Thread(target=release, name="videoscene-pool-release", daemon=True).start()

    def describe(self) -> dict[str, Any]:
        replicas = []
        # Job threads change these dicts meanwhile: iterate over copies.
        running_on = {place["replica"]: job for job, place in list(self._placement.items())}
        for replica_id, state in sorted(self._snapshot.items()):
            job = self._jobs.get(running_on.get(replica_id, ""))
            replicas.append(
                {
                    "replica": replica_id,
                    **{k: state.get(k) for k in ("node", "host", "pid", "device")},
                    "running": None if job is None else _job_summary(job),
                    "models": state.get("models", []),
                    "scenes": state.get("scenes", []),
                }
            )
        devices = sorted({str(replica["device"]) for replica in replicas}) or ["starting"]
        return {
            "device": f"ray pool of {self.replicas} replicas ({', '.join(devices)})",
            "models": sorted({key for replica in replicas for key in replica["models"]}),
            "scenes": self._scenes.ids(),
            "pool": {
                "address": self.config.address or "local",
                "replicas_wanted": self.replicas,
                "replicas": replicas,
                "waiting": [
                    job_id for job_id, job in list(self._jobs.items()) if job.state == "queued"
                ],
            },
        }

    def supervise(self) -> None:
        """Nothing to do: Ray Serve restarts lost replicas, and _drive retries or fails the
        jobs they held."""

    def stop(self) -> None:
        self._stopping.set()
        for response in list(self._responses.values()):
            response.cancel()
        cluster.shutdown(self.config, self._board)

    # ---- one job -----------------------------------------------------------------------
    def _drive(self, job: Job) -> None:
        assert self._host is not None
        try:
            for attempt in range(1, ATTEMPTS + 1):
                if job.state == "cancelled":
                    return
                try:
                    self._attempt(job)
                    return
                except REPLICA_LOST as exc:
                    place = self._placement.pop(job.job_id, {})
                    lost = _replica_lost(job, place, exc, attempt)
                    if job.state == "cancelled":
                        return
                    if job.cancel.is_set() or attempt == ATTEMPTS or self._stopping.is_set():
                        self._host.finish_job(job, None, lost)
                        return
                    log.warning("%s; running it again", lost.message)
                    job.state = "queued"
        except (RequestCancelledError, TaskCancelledError):
            if job.state != "cancelled":  # cancelled while queued: its record is written
                self._host.finish_job(
                    job,
                    None,
                    VideoSceneError(ErrorCode.CANCELLED, f"Job {job.job_id} was cancelled."),
                )
        except Exception as exc:  # anything else from Ray or the stream: a clear record
            if job.state != "cancelled":
                self._host.finish_job(job, None, exc)
        finally:
            self._responses.pop(job.job_id, None)
            self._placement.pop(job.job_id, None)
            self._jobs.pop(job.job_id, None)

    def _attempt(self, job: Job) -> None:
        assert self._host is not None
        request = job.request
        scene_id = request.params.get("scene_id")
        options: dict[str, Any] = {"stream": True}
        scene_ref = []
        if isinstance(scene_id, str) and ID_PATTERN.fullmatch(scene_id):
            options["multiplexed_model_id"] = scene_id
            ref = self._scenes.get(scene_id)
            scene_ref = [] if ref is None else [ref]
        spec = {
            "job_id": job.job_id,
            "kind": job.kind,
            "params": request.params,
            "arrays": dict(request.arrays),
            "blobs": {name: bytes(blob) for name, blob in request.blobs.items()},
            "forward": self._forward,
        }
        response = self._handle.options(**options).run_job.remote(spec, scene_ref)
        self._responses[job.job_id] = response
        if job.cancel.is_set():
            response.cancel()
        context = None
        for event in response:
            kind = event["type"]
            if job.state == "cancelled":  # cancelled while queued; wait for Serve to stop it
                continue
            if kind == "started":
                job.state = "running"
                context = self._host.job_context(job)
                self._placement[job.job_id] = event
                log.info("job %s running on replica %s", job.job_id[:8], event["replica"])
            elif context is None:
                raise RuntimeError(f"a replica sent {kind!r} before 'started'")
            elif kind == "files":
                write_files(context.work_dir, event["files"])
            elif kind == "call":
                getattr(context, event["name"])(*event["args"], **event["kwargs"])
            elif kind == "scene":
                self._scenes.put(event["scene_id"], event["ply"])
            elif kind == "done":
                output = JobOutput(event["meta"], event["arrays"], event["blobs"], event["files"])
                self._host.finish_job(job, output, None)
                return
            elif kind == "failed":
                self._host.finish_job(job, None, VideoSceneError.from_dict(event["error"]))
                return
        if job.state != "cancelled":
            raise RuntimeError("the replica's stream ended without a result")

    # ---- status ----------------------------------------------------------------------
    def _refresh_status(self) -> None:
        while not self._stopping.is_set():
            try:
                self._snapshot = ray.get(self._board.snapshot.remote(), timeout=5.0)
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.debug("pool status unavailable: %s", exc)
            self._stopping.wait(STATUS_REFRESH_S)


def _job_summary(job: Job) -> dict[str, Any]:
    return {"job_id": job.job_id, "kind": job.kind, "stage": job.stage, "fraction": job.fraction}


def _replica_lost(job: Job, place: dict[str, Any], exc: Exception, attempt: int) -> VideoSceneError:
    where = (
        f"replica {place.get('replica')} on {place.get('host')} ({place.get('node')})"
        if place
        else "its pool replica"
    )
    cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower():
        code = ErrorCode.OUT_OF_MEMORY
    else:
        code = ErrorCode.INTERNAL
    return VideoSceneError(
        code,
        f"Job {job.job_id} lost {where} (attempt {attempt} of {ATTEMPTS}): {cause}",
        "The pool goes on with its other replicas and Ray restarts the lost one; submit the "
        "job again. `ray logs` on that node says why the replica stopped.",
    )

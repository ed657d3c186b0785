"""The Ray Serve deployment: each replica keeps the models resident on its device and runs the
same job handlers as the single-box service, one job at a time.

A job is one streaming request (`run_job`, an async generator): the handler runs in a thread
while the request yields its events to the front end as they happen ("started", "files",
"call", "scene", then "done" or "failed"). Scenes are Serve multiplexed models keyed by scene id,
so Serve routes render jobs to a replica that already holds the scene; another replica loads it
from the PLY the front end keeps in Ray's object store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import serve
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import ID_PATTERN

from ...models import ModelCache
from ...pipeline.contract import JobOutput, JobRequest
from ...scene.gaussians import GaussianScene
from ...scene.ply import load_ply, ply_bytes
from ...scene.store import SceneStore
from ..executor import device_name
from ..jobs import as_error
from .transfer import FileStamp, changed_files

log = logging.getLogger("videoscene.pool")

SCENES_PER_REPLICA = 8  # the SceneStore's capacity on a single box
BOARD_RETRY_S = 2.0


class ReplicaJobContext:
    """The JobContext a handler sees on a replica (backend/pipeline/contract.py).

    Every method the front end's context offers (named in `forward`: progress today, whatever
    the service adds later) is forwarded as a "call" event, preceded by the files the handler
    wrote since the last one, so the front end sees the files a call announces. Cancellation
    is checked locally: the request's cancellation sets `cancel`.
    """

    def __init__(
        self,
        job_id: str,
        work_dir: Path,
        models: ModelCache,
        scenes: SceneStore,
        checkpoints_dir: Path,
        forward: list[str],
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self.job_id = job_id
        self.work_dir = work_dir
        # The replica's scratch: render jobs' frames live on the front end, not here, so a
        # fit_scene from a render job answers unknown_job on a pool (docs/pool.md).
        self.jobs_dir = work_dir.parent
        self.models = models
        self.scenes = scenes
        self.checkpoints_dir = checkpoints_dir
        self.cancel = threading.Event()
        self._emit = emit
        self._sent: dict[str, FileStamp] = {}
        for name in forward:
            if name.isidentifier() and not name.startswith("_") and not hasattr(self, name):
                setattr(self, name, self._forwarder(name))

    def _forwarder(self, name: str) -> Callable[..., None]:
        def forward(*args: Any, **kwargs: Any) -> None:
            self.send_files()
            self._emit({"type": "call", "name": name, "args": args, "kwargs": kwargs})

        forward.__name__ = name
        return forward

    def send_files(self) -> None:
        files = changed_files(self.work_dir, self._sent)
        if files:
            self._emit({"type": "files", "files": files})

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise VideoSceneError(ErrorCode.CANCELLED, f"Job {self.job_id} was cancelled.")


class _HeldScene:
    """A scene in Serve's multiplexed cache; Serve calls __del__ when it evicts one."""

    def __init__(self, scene_id: str, scene: GaussianScene, held: set[str]) -> None:
        self.scene_id, self.scene, self._held = scene_id, scene, held
        held.add(scene_id)

    def __del__(self) -> None:
        self._held.discard(self.scene_id)


class PoolReplica:
    """One worker of the pool (decorated as a Serve deployment by `deployment()` below)."""

    def __init__(
        self,
        checkpoints_dir: str,
        board_name: str,
        namespace: str,
        extra_handlers: dict[str, str] | None = None,
    ) -> None:
        from ...pipeline.registry import HANDLERS

        self.checkpoints_dir = Path(checkpoints_dir)
        self.models = ModelCache()
        self.handlers = dict(HANDLERS)
        for kind, target in (extra_handlers or {}).items():
            module, _, attribute = target.partition(":")
            self.handlers[kind] = getattr(importlib.import_module(module), attribute)
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self.identity = {
            "node": ray.util.get_node_ip_address(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": device_name(),
        }
        self.scratch = Path(tempfile.mkdtemp(prefix=f"videoscene-replica-{self.replica_id}-"))
        self._held: set[str] = set()
        self._arriving: dict[str, Any] = {}  # scene id -> GaussianScene or ObjectRef of its PLY
        self._threads = concurrent.futures.ThreadPoolExecutor(1, "videoscene-job")
        self._board_name, self._namespace = board_name, namespace
        self._board: Any = None  # the board's handle, once looked up
        threading.Thread(target=self._follow_board, name="videoscene-board", daemon=True).start()

    # ---- jobs -------------------------------------------------------------------------
    async def run_job(self, spec: dict[str, Any], scene_ref: list[Any]) -> AsyncIterator[dict]:
        """Run one job; yields its events. spec: job_id, kind, params, arrays, blobs, forward.
        scene_ref: [] or [ObjectRef of the PLY] of the scene the multiplexed id names."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        job_id = spec["job_id"]
        yield {"type": "started", "replica": self.replica_id, **self.identity}
        scenes = SceneStore(SCENES_PER_REPLICA)
        wanted = serve.get_multiplexed_model_id()
        if wanted:
            scene = await self._scene_for_job(wanted, scene_ref)
            if scene is not None:
                scenes.put(scene, wanted)
        work_dir = self.scratch / job_id
        work_dir.mkdir(parents=True, exist_ok=True)
        context = ReplicaJobContext(
            job_id,
            work_dir,
            self.models,
            scenes,
            self.checkpoints_dir,
            spec["forward"],
            lambda event: loop.call_soon_threadsafe(events.put_nowait, event),
        )
        # Arrays from the object store are read-only views; handlers may hand them to torch.
        arrays = {name: np.array(array) for name, array in spec["arrays"].items()}
        request = JobRequest(job_id, spec["kind"], spec["params"], arrays, spec["blobs"])
        done = loop.run_in_executor(
            self._threads, self._run_handler, context, request, set(scenes.ids())
        )
        try:
            while not (done.done() and events.empty()):
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({getter, done}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            outcome, new_scenes = done.result()
            for scene_id, scene, ply in new_scenes:
                await self._hold(scene_id, scene)
                yield {"type": "scene", "scene_id": scene_id, "ply": ply}
            yield outcome
        except (asyncio.CancelledError, GeneratorExit):
            context.cancel.set()  # the handler stops at its next check_cancelled
            await self._wait_for(done)  # the replica takes no new job until it has
            raise
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
            self._report()

    def _run_handler(
        self, context: ReplicaJobContext, request: JobRequest, given: set[str]
    ) -> tuple[dict[str, Any], list[tuple[str, GaussianScene, bytes]]]:
        """In the job thread: the handler, then its files and the scenes it made."""
        started = time.perf_counter()
        try:
            handler = self.handlers.get(request.kind)
            if handler is None:
                raise VideoSceneError(
                    ErrorCode.UNKNOWN_JOB_KIND,
                    f"This pool replica has no handler for {request.kind!r}.",
                    "Run the same backend version on the front end and every pool node.",
                )
            output: JobOutput = handler(context, request)
            context.send_files()
            made = [
                (scene_id, context.scenes.get(scene_id))
                for scene_id in context.scenes.ids()
                if scene_id not in given
            ]
            new_scenes = [(scene_id, scene, ply_bytes(scene)) for scene_id, scene in made]
        except Exception as exc:  # every failure becomes a record the client can read
            error = as_error(exc, request.job_id)
            log.info("job %s %s on %s", request.job_id[:8], error.code, self.replica_id)
            return {"type": "failed", "error": error.to_dict()}, []
        log.info(
            "job %s done on %s in %.1f s",
            request.job_id[:8],
            self.replica_id,
            time.perf_counter() - started,
        )
        done = {
            "type": "done",
            "meta": output.meta,
            "arrays": output.arrays,
            "blobs": {name: bytes(blob) for name, blob in output.blobs.items()},
            "files": output.files,
        }
        return done, new_scenes

    @staticmethod
    async def _wait_for(done: asyncio.Future) -> None:
        while not done.done():
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                continue  # cancelled again: still wait for the handler to stop
            except Exception:
                return

    # ---- scenes (Serve multiplexed models) ----------------------------------------------
    async def _scene_for_job(self, scene_id: str, scene_ref: list[Any]) -> GaussianScene | None:
        if not ID_PATTERN.fullmatch(scene_id):
            return None
        if scene_ref and scene_id not in self._held:
            self._arriving[scene_id] = scene_ref[0]
        try:
            return (await self._scene(scene_id)).scene
        except VideoSceneError:
            return None  # the handler reports unknown_scene once it has checked its params
        finally:
            self._arriving.pop(scene_id, None)

    async def _hold(self, scene_id: str, scene: GaussianScene) -> None:
        self._arriving[scene_id] = scene
        try:
            await self._scene(scene_id)
        finally:
            self._arriving.pop(scene_id, None)

    @serve.multiplexed(max_num_models_per_replica=SCENES_PER_REPLICA)
    async def _scene(self, scene_id: str) -> _HeldScene:
        source = self._arriving.get(scene_id)
        if source is None:
            raise VideoSceneError(ErrorCode.UNKNOWN_SCENE, f"Scene {scene_id!r} is not here.")
        if not isinstance(source, GaussianScene):
            ply = await source  # an ObjectRef: fetched from the object store
            source = await asyncio.get_running_loop().run_in_executor(None, load_ply, ply)
            log.info("scene %s loaded on %s", scene_id, self.replica_id)
        return _HeldScene(scene_id, source, self._held)

    # ---- the board: status and release_models ----------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {**self.identity, "models": self.models.loaded(), "scenes": sorted(self._held)}

    def _report(self) -> None:
        try:
            board = self._board or ray.get_actor(self._board_name, namespace=self._namespace)
            board.report.remote(self.replica_id, self._state())
        except Exception as exc:  # the board is only for status; jobs go on without it
            log.warning("could not report to the pool board: %s", exc)

    def _follow_board(self) -> None:
        """Long-poll the board for commands (release_models), for the replica's lifetime."""
        after = None
        while True:
            try:
                board = ray.get_actor(self._board_name, namespace=self._namespace)
                self._board = board
                if after is None:
                    after = ray.get(board.register.remote(self.replica_id, self._state()))
                command = ray.get(board.next_command.remote(self.replica_id, after))
            except Exception as exc:  # board restarting with a new front end: look it up again
                log.info("pool board unavailable (%s); retrying", type(exc).__name__)
                after = None
                time.sleep(BOARD_RETRY_S)
                continue
            if command is None:
                continue
            after, name = command
            answer = self.models.release() if name == "release_models" else None
            log.info("command %s on %s: %s", name, self.replica_id, answer)
            board.answer.remote(after, self.replica_id, answer)
            board.report.remote(self.replica_id, self._state())

    def check_health(self) -> None:
        """Serve's health check: the replica's loop answers while a job runs in its thread."""


def deployment(
    replicas: int,
    actor_options: dict[str, Any],
    checkpoints_dir: Path,
    board_name: str,
    namespace: str,
    extra_handlers: dict[str, str] | None = None,
):
    """The bound Serve application: `replicas` copies, one job at a time each."""
    return (
        serve.deployment(PoolReplica)
        .options(
            name="VideoSceneReplica",
            num_replicas=replicas,
            ray_actor_options=actor_options,
            max_ongoing_requests=1,  # one job per replica; the rest wait in the shared queue
            health_check_period_s=5,
        )
        .bind(str(checkpoints_dir), board_name, namespace, extra_handlers)
    )


__all__ = ["PoolReplica", "ReplicaJobContext", "deployment"]

"""Connecting the front end to Ray and deploying the pool on it."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoscene_protocol.errors import ErrorCode, VideoSceneError

log = logging.getLogger("videoscene.pool")

NAMESPACE = "videoscene"  # the front end's Ray namespace; the board actor lives in it
DEFAULT_APP = "videoscene"
GCS_CHECK_TIMEOUT_S = 5.0


@dataclass
class PoolConfig:
    """What `serve --pool ray[:ADDRESS] [--replicas N]` asks for."""

    address: str | None  # None: start a Ray instance on this machine only
    checkpoints_dir: Path
    replicas: int | None = None  # None: one per GPU in the cluster, else 1
    app_name: str = DEFAULT_APP
    # Extra job kinds by import path ("kind" -> "module:function"), importable on every node.
    extra_handlers: dict[str, str] = field(default_factory=dict)
    local_cpus: int | None = None  # a local instance's CPU count (None: Ray's own count)
    local_object_store_bytes: int | None = None


def parse_pool_option(value: str) -> str | None:
    """`ray` -> None (a local Ray instance), `ray:ADDRESS` -> ADDRESS."""
    backend, _, address = value.partition(":")
    if backend != "ray" or (value != "ray" and not address):
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"--pool {value!r} is not a pool this backend knows.",
            "Use --pool ray (a Ray instance on this machine) or --pool ray:HEAD_HOST:6379.",
        )
    return address or None


def connect(config: PoolConfig) -> None:
    """ray.init, locally or to the cluster at config.address; a dead cluster is a clear error."""
    if config.address is None:
        # A local pool is one machine: keep Ray's node address on loopback (its default is the
        # machine's outward address). Read by Ray at import, so set before importing it.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    options: dict[str, Any] = {"namespace": NAMESPACE, "logging_level": logging.WARNING}
    if config.address is None:
        options |= {
            "num_cpus": config.local_cpus,
            "object_store_memory": config.local_object_store_bytes,
            "include_dashboard": False,
        }
    else:
        _check_reachable(config.address)
        options["address"] = config.address
    try:
        ray.init(**options)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError, grpc errors...
        raise _cluster_error(config.address, f"{type(exc).__name__}: {exc}") from exc


def _check_reachable(address: str) -> None:
    """ray.init keeps retrying a dead head node for minutes; one TCP connect says it at once.
    Only for HOST:PORT (and ray://HOST:PORT) addresses; "auto" is Ray's own look-up."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), GCS_CHECK_TIMEOUT_S).close()
    except OSError as exc:
        raise _cluster_error(address, str(exc)) from exc


def _cluster_error(address: str | None, cause: str) -> VideoSceneError:
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    return VideoSceneError(
        ErrorCode.BACKEND_DEAD,
        f"Could not connect to {where}: {cause.splitlines()[0] if cause else 'no answer'}",
        "Start the head node first (`ray start --head --port 6379` on the head box) and pass "
        "its address as --pool ray:HEAD_HOST:6379; without an address, --pool ray starts a "
        "Ray instance on this machine.",
    )


def replica_resources(config: PoolConfig) -> tuple[int, dict[str, float]]:
    """(replica count, ray_actor_options): one GPU per replica where the cluster has GPUs
    (untested here: no GPU), else one CPU per replica."""
    import ray

    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if gpus:
        replicas, options, have, unit = config.replicas or gpus, {"num_gpus": 1}, gpus, "GPU"
    else:
        replicas, options, have, unit = config.replicas or 1, {"num_cpus": 1}, cpus, "CPU"
    if replicas < 1 or replicas > have:
        where = f"the cluster at {config.address}" if config.address else "this machine"
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"--replicas {replicas} needs {replicas} {unit}s; {where} has {have}.",
            f"Use --replicas 1..{have}, or add nodes to the cluster (`ray start --address ...`).",
        )
    return replicas, options


def deploy(config: PoolConfig) -> tuple[Any, Any, int]:
    """Start Serve (no HTTP proxy: the ZeroMQ front end is the only ingress), the board and the
    replicas. Returns (deployment handle, board, replica count) once every replica is up."""
    import ray
    from ray import serve

    from .board import PoolBoard
    from .replica import deployment

    replicas, actor_options = replica_resources(config)
    board_name = f"{config.app_name}-board"
    board = PoolBoard.options(name=board_name, namespace=NAMESPACE, get_if_exists=True).remote()
    ray.get(board.snapshot.remote())
    serve.start(proxy_location="Disabled")
    application = deployment(
        replicas,
        actor_options,
        config.checkpoints_dir.resolve(),
        board_name,
        NAMESPACE,
        config.extra_handlers,
    )
    log.info("deploying %d pool replicas (%s)", replicas, actor_options)
    try:
        handle = serve.run(application, name=config.app_name, route_prefix=None)
    except Exception as exc:
        raise VideoSceneError(
            ErrorCode.INTERNAL,
            f"The pool's replicas did not start: {type(exc).__name__}: {exc}",
            "Every node needs this backend installed with the pool extra, in the same "
            "version; the replicas' logs are under the Ray session's logs folder.",
        ) from exc
    return handle, board, replicas


def shutdown(config: PoolConfig, board: Any) -> None:
    """Remove the application and the board; stop Ray itself when this process started it."""
    import ray
    from ray import serve

    try:
        serve.delete(config.app_name)
        ray.kill(board)
    except Exception as exc:  # a cluster already gone has nothing left to remove
        log.warning("pool shutdown: %s", exc)
    if config.address is None:
        serve.shutdown()
    ray.shutdown()

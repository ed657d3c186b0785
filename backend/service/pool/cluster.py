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
AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_PROBE_TIMEOUT_S = 60.0
TOKEN_FIX = (
    "The pool runs only on a Ray cluster that requires its token. On the head box: "
    "`ray get-auth-token --generate && chmod 600 ~/.ray/auth_token`; copy that file (mode 0600) "
    "to ~/.ray/auth_token on every box; start every node with `RAY_AUTH_MODE=token ray start "
    "... --include-dashboard=false` on a private address, and start serve with "
    "RAY_AUTH_MODE=token (docs/pool.md, Set-up)."
)
# Run in a scrubbed environment (no token, auth disabled, a HOME without ~/.ray/auth_token):
# a cluster that answers this request lets anyone on its network in.
_TOKENLESS_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"videoscene-probe", None, timeout=10)
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(3)
print("answered")
"""


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


def insecure_error(why: str) -> VideoSceneError:
    return VideoSceneError(ErrorCode.POOL_INSECURE, why, TOKEN_FIX)


def require_token_mode() -> None:
    """Token authentication for this process's Ray (set before Ray is imported): an explicit
    other RAY_AUTH_MODE is refused, never overridden silently."""
    mode = os.environ.get(AUTH_MODE_ENV)
    if mode is not None and mode.strip().lower() != "token":
        raise insecure_error(
            f"{AUTH_MODE_ENV}={mode!r}: the pool refuses to run Ray without token authentication "
            "(anyone reaching its ports could run code on every GPU box)."
        )
    os.environ[AUTH_MODE_ENV] = "token"


def check_cluster_requires_token(address: str) -> None:
    """Ask the cluster's GCS a question without the token, from a scrubbed process: an answer
    means the cluster is open to anyone on its network."""
    import subprocess
    import sys
    import tempfile

    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH_TOKEN")}
    with tempfile.TemporaryDirectory(prefix="videoscene-probe-") as home:
        env |= {AUTH_MODE_ENV: "disabled", "HOME": home, "USERPROFILE": home}
        try:
            probe = subprocess.run(
                [sys.executable, "-c", _TOKENLESS_PROBE, address.removeprefix("ray://")],
                env=env,
                capture_output=True,
                text=True,
                timeout=TOKEN_PROBE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return  # no answer without the token within a minute: not open
    if probe.returncode == 0:
        raise insecure_error(
            f"The Ray cluster at {address} answers requests without its token: it was started "
            "without RAY_AUTH_MODE=token."
        )


def check_token_mode() -> None:
    """After ray.init: Ray itself must report token mode; its token file is made 0600."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    if get_authentication_mode() != AuthenticationMode.TOKEN:
        raise insecure_error("Ray did not start in token authentication mode.")
    token_file = Path.home() / ".ray" / "auth_token"  # Ray writes it 0644 (umask)
    if os.name == "posix" and token_file.is_file() and token_file.stat().st_uid == os.getuid():
        token_file.chmod(0o600)


def connect(config: PoolConfig) -> None:
    """ray.init with token authentication, locally or to the cluster at config.address; a dead
    or an open (token-less) cluster is a clear error."""
    require_token_mode()
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
        if config.address != "auto":
            check_cluster_requires_token(config.address)
        options["address"] = config.address
    try:
        ray.init(**options)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError, grpc errors...
        raise _cluster_error(config.address, f"{type(exc).__name__}: {exc}") from exc
    try:
        check_token_mode()
    except VideoSceneError:
        ray.shutdown()
        raise


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

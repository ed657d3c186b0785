"""A studio's GPU pool: the same front end, with jobs run by Ray Serve replicas (docs/pool.md).

Nothing here imports Ray until `start_pool` is called: without `serve --pool` the backend never
loads it, and Ray is an optional extra (`pip install .[pool]`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cluster import PoolConfig, parse_pool_option

if TYPE_CHECKING:
    from .executor import RayPoolExecutor


def start_pool(config: PoolConfig) -> RayPoolExecutor:
    """Connect to Ray (or start it here), deploy the replicas, return the service's executor.
    Raises VideoSceneError with a hint when Ray is missing, unreachable or too small."""
    import importlib.util

    from videoscene_protocol.errors import ErrorCode, VideoSceneError

    from . import cluster

    if importlib.util.find_spec("ray") is None:  # not imported: connect() sets Ray's env first
        raise VideoSceneError(
            ErrorCode.NOT_IMPLEMENTED,
            "The pool needs Ray Serve, which is not installed.",
            "Install the pool extra: pip install -e '.[pool]' (or bash dev.sh test).",
        )
    cluster.connect(config)
    from .executor import RayPoolExecutor

    return RayPoolExecutor(config)


__all__ = ["PoolConfig", "parse_pool_option", "start_pool"]

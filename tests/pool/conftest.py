"""One Ray pool per test module: a local Ray instance (loopback only) with 2 CPU replicas, the
tiny video model, the test handlers of pool_handlers.py, and a front end in a thread. Teardown
stops Ray and checks that none of its processes outlive the tests."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from videoscene_backend.pipeline import registry
from videoscene_backend.service import ServiceHandle, start_in_thread
from videoscene_protocol.client import BackendClient

HERE = Path(__file__).resolve().parent
REPLICAS = 2
STOP_CEILING_S = 120.0


def _tiny_video_checkpoint(root: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "video_conftest", HERE.parent / "video" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_tiny_checkpoint(root)


def ray_processes() -> list[str]:
    """Command lines of this process's descendants that belong to Ray."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            commands[int(entry.name)] = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        if "ray" in commands.get(pid, ""):
            found.append(f"{pid}: {commands[pid][:120]}")
    return found


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceHandle]:
    from videoscene_backend.service.pool import PoolConfig, start_pool

    root = tmp_path_factory.mktemp("pool")
    checkpoints = _tiny_video_checkpoint(root / "checkpoints")
    with pytest.MonkeyPatch.context() as patch:
        # The replicas import the test handlers from this folder (Ray's processes inherit it).
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        )
        from pool_handlers import slow_job

        patch.setitem(registry.HANDLERS, "slow", slow_job)  # the front end's kind check
        executor = start_pool(
            PoolConfig(
                address=None,
                checkpoints_dir=checkpoints,
                replicas=REPLICAS,
                extra_handlers={"slow": "pool_handlers:slow_job"},
                local_cpus=REPLICAS + 2,
                # Eight clients' scenes (a PLY of ~30 MB each at this size) and their results
                # pass through the object store. At 256 MiB this process (front end and
                # clients) once went silent for 7 s in CI; spilling is the suspected cause.
                local_object_store_bytes=1 << 30,
            )
        )
        handle = start_in_thread(root / "out", checkpoints, executor=executor, max_queue=16)
        try:
            yield handle
        finally:
            handle.stop(timeout_s=STOP_CEILING_S)
    deadline = time.monotonic() + STOP_CEILING_S
    while ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_processes(), f"Ray processes left after shutdown: {ray_processes()}"


@pytest.fixture()
def client(pool: ServiceHandle) -> Iterator[BackendClient]:
    client = BackendClient(pool.address)
    client.connect(timeout_s=30)
    yield client
    client.close()

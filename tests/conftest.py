"""Suite-wide pytest set-up: skip tests marked `cuda` where no CUDA device exists; the job
context handlers get from the service, for tests that call handlers directly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda_items = [item for item in items if "cuda" in item.keywords]
    if not cuda_items:
        return
    import torch  # only imported when a CUDA test was collected (never in the bpy process)

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in cuda_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def job_context():
    """make(work_dir, checkpoints_dir=None) -> what a handler receives as `ctx` (JobContext)
    from the service, without the service. Progress calls are kept in ctx.events as
    (stage, fraction, message) and frames_ready bodies in ctx.frames; without a checkpoints_dir
    it points at an absent folder."""
    # Imported here: this conftest is also loaded by the add-on tests inside bpy.
    from videoscene_backend.models import ModelCache
    from videoscene_backend.scene.store import SceneStore

    def make(work_dir: Path, checkpoints_dir: Path | None = None) -> SimpleNamespace:
        events: list[tuple[str, float, str]] = []
        frames: list[dict] = []
        return SimpleNamespace(
            job_id="test",
            work_dir=work_dir,
            models=ModelCache(),
            scenes=SceneStore(),
            checkpoints_dir=checkpoints_dir or work_dir / "no-checkpoints",
            jobs_dir=work_dir.parent,
            progress=lambda stage, fraction, message="": events.append((stage, fraction, message)),
            check_cancelled=lambda: None,
            frames_ready=frames.append,
            events=events,
            frames=frames,
        )

    return make

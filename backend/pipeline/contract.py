"""What the service hands a job handler and what a handler returns.

The service (socket loop + worker) owns queueing, progress transport, cancellation and writing
results atomically to jobs/<id>/. A handler owns the science: it reads a JobRequest, reports
progress through the context, checks for cancellation between steps, and returns a JobOutput.
Handlers raise videoscene_protocol.errors.VideoSceneError for anything the user should see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..models import ModelCache
    from ..scene.store import SceneStore

# Progress stages, in pipeline order (docs/protocol.md lists them).
STAGES = ("prior", "pose", "render", "fit", "encode", "denoise", "decode", "write")


@dataclass
class JobRequest:
    job_id: str
    kind: str  # "build_scene" | "load_scene" | "render_video" | "fit_scene"
    params: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # e.g. encoded images, PLY bytes


@dataclass
class JobOutput:
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-able; sent in the result envelope
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # sent as raw binary frames
    blobs: dict[str, bytes] = field(default_factory=dict)  # sent as raw binary frames
    # Extra files the handler wrote into ctx.work_dir (relative names), listed in the result.
    files: list[str] = field(default_factory=list)


class JobContext(Protocol):
    job_id: str
    work_dir: Path  # handler's files go here; the service moves it to jobs/<id>/ atomically
    jobs_dir: Path  # the service's jobs/ folder: earlier jobs' folders (fit_scene reads them)
    models: ModelCache
    scenes: SceneStore
    checkpoints_dir: Path

    def progress(self, stage: str, fraction: float, message: str = "") -> None: ...

    def check_cancelled(self) -> None:
        """Raise VideoSceneError(CANCELLED) if the client asked to cancel this job."""
        ...

    def frames_ready(self, event: dict[str, Any]) -> None:
        """Frames the job wrote into work_dir (frame_store.py) are complete: the service sends
        a frames_ready event with this body (docs/protocol.md)."""
        ...

"""Job kind -> handler. The service looks handlers up here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable

from .contract import JobContext, JobOutput, JobRequest
from .fit_job import fit_scene_job
from .scene_jobs import build_scene, load_scene, render_video

Handler = Callable[[JobContext, JobRequest], JobOutput]

HANDLERS: dict[str, Handler] = {
    "build_scene": build_scene,
    "load_scene": load_scene,
    "render_video": render_video,
    "fit_scene": fit_scene_job,
}

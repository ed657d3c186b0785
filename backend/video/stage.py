"""The refine stage of render_video: coarse frames along the path -> VideoScene frames."""

from __future__ import annotations

from typing import Any

import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from ..devices import default_device
from ..pipeline.contract import JobContext
from .checkpoints import find_checkpoint, missing_files
from .memory import plan_memory
from .refiner import RefineOptions, VideoRefiner
from .resample import nearest_time_indices, resample_time, resize_frames


def refine_stage(
    ctx: JobContext,
    coarse_frames: np.ndarray,
    reference_photos: list[np.ndarray],
    options: RefineOptions,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Return (refined frames uint8 (N, H, W, 3) or None, metadata). None means the coarse frames
    are all the job returns, and metadata["refine_message"] says why in plain words."""
    root = ctx.checkpoints_dir
    missing = missing_files(root)
    if missing:
        return None, {
            "refined": False,
            "weights_missing": missing,
            "refine_message": (
                "Coarse frames only: the video model's weights are not installed. Missing under "
                f"{root}: {'; '.join(missing)}. Run `videoscene-backend download --what videoscene` "
                "on the backend machine (see checkpoints/README.md)."
            ),
        }
    if options.condition_source == "photos" and len(reference_photos) < 2:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            "condition_source 'photos' needs the scene's two reference photos; this scene has none "
            "(it was loaded from a PLY).",
            "Use condition_source 'rendered', or build the scene from the photos again.",
        )
    plan = plan_memory(options.memory_mode, default_device())
    key = f"video:refiner:{root}:{plan.mode}"
    if key not in ctx.models.loaded():
        ctx.models.release("video:")  # a refiner in another memory mode would double the memory
    checkpoint = find_checkpoint(root)
    refiner = ctx.models.get(key, lambda: VideoRefiner.from_checkpoint(checkpoint, plan))

    count, height, width = coarse_frames.shape[:3]
    model_frames = resize_frames(
        resample_time(coarse_frames, refiner.num_frames), refiner.height, refiner.width
    )
    if options.condition_source == "photos":
        first, last = (
            resize_frames(p[None], refiner.height, refiner.width)[0] for p in reference_photos[:2]
        )
    else:
        first, last = model_frames[0], model_frames[-1]
    refined, report = refiner.refine(
        model_frames, first, last, options, ctx.progress, ctx.check_cancelled
    )
    # Each requested frame shows the model frame nearest to its instant.
    back = refined[nearest_time_indices(refiner.num_frames, count)]
    back = resize_frames(back, height, width)
    return back, {
        "refined": True,
        "refine_message": "",
        "video_model": {
            "mode": options.mode,
            "leap_timestep": options.timestep,
            "seed": options.seed,
            "steps": options.steps if options.mode == "multi_step" else 1,
            "guidance_scale": options.guidance_scale,
            "condition_source": options.condition_source,
            "memory": plan.describe(),
            "model_frames": refiner.num_frames,
            "model_size": [refiner.height, refiner.width],
            "timings": report.timings,
            "peak_memory_bytes": report.peak_memory_bytes,
            "sampler": report.sampler,
            "weights": refiner.load_report,
        },
    }

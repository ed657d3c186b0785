"""The video model's share of render_video: load the refiner (or say plainly why not), and the
condition frames of a window (rendered frames, the previous window's refined seam, or the
reference photos placed on the canvas).

The window loop itself is backend/pipeline/path_video.py; the window policy is windows.py and
the canvas geometry canvas.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from ..devices import default_device
from ..pipeline.contract import JobContext
from ..scene.gaussians import PinholeCamera
from .canvas import place_photo, pose_offset
from .checkpoints import find_checkpoint, missing_files
from .memory import MemoryPlan, plan_memory
from .refiner import RefineOptions, VideoRefiner

# A path end counts as "at" its reference camera within this fraction of the reference
# baseline and this angle; further away the photo does not line up with the rendered frame.
PHOTO_ALIGN_DISTANCE = 0.02
PHOTO_ALIGN_DEGREES = 1.0


def weights_missing(ctx: JobContext) -> dict[str, Any] | None:
    """The coarse-only metadata when the video model's weights are absent, else None."""
    root = ctx.checkpoints_dir
    missing = missing_files(root)
    if not missing:
        return None
    return {
        "refined": False,
        "weights_missing": missing,
        "refine_message": (
            "Coarse frames only: the video model's weights are not installed. Missing under "
            f"{root}: {'; '.join(missing)}. Run `videoscene-backend download --what videoscene` "
            "on the backend machine (see checkpoints/README.md)."
        ),
    }


def check_photos(options: RefineOptions, reference_photos: list[np.ndarray]) -> None:
    if options.condition_source == "photos" and len(reference_photos) < 2:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            "condition_source 'photos' needs the scene's two reference photos; this scene has none "
            "(it was loaded from a PLY).",
            "Use condition_source 'rendered', or build the scene from the photos again.",
        )


def load_refiner(ctx: JobContext, options: RefineOptions) -> tuple[VideoRefiner, MemoryPlan]:
    """The warm refiner for this memory mode (loaded once, kept in the model cache)."""
    root = ctx.checkpoints_dir
    plan = plan_memory(options.memory_mode, default_device())
    key = f"video:refiner:{root}:{plan.mode}"
    if key not in ctx.models.loaded():
        ctx.models.release("video:")  # a refiner in another memory mode would double the memory
    checkpoint = find_checkpoint(root)
    refiner = ctx.models.get(key, lambda: VideoRefiner.from_checkpoint(checkpoint, plan))
    return refiner, plan


def video_model_meta(
    refiner: VideoRefiner, options: RefineOptions, plan: MemoryPlan
) -> dict[str, Any]:
    return {
        "mode": options.mode,
        "leap_timestep": options.timestep,
        "seed": options.seed,
        "steps": options.steps if options.mode == "multi_step" else 1,
        "guidance_scale": options.guidance_scale,
        "condition_source": options.condition_source,
        "memory": plan.describe(),
        "model_frames": refiner.num_frames,
        "model_size": [refiner.height, refiner.width],
        "weights": refiner.load_report,  # what was loaded, from where
    }


@dataclass
class ReferencePhoto:
    """A reference photo and its camera, K rescaled to the photo's actual pixel size."""

    image: np.ndarray
    camera: PinholeCamera

    @classmethod
    def of(cls, image: np.ndarray, camera: PinholeCamera) -> ReferencePhoto:
        height, width = image.shape[:2]
        K = np.array(camera.K, dtype=np.float64)
        K[0] *= width / camera.width
        K[1] *= height / camera.height
        return cls(image, PinholeCamera(np.asarray(camera.c2w, np.float64), K, width, height))

    def on_canvas(self, canvas_K: np.ndarray, coarse: np.ndarray) -> tuple[np.ndarray, float]:
        """The photo on the canvas camera of the frame it conditions; the coarse render fills
        what it does not cover."""
        return place_photo(self.image, self.camera.K, canvas_K, coarse)


def photo_alignment(
    photos: list[ReferencePhoto], first_c2w: np.ndarray, last_c2w: np.ndarray
) -> dict[str, Any]:
    """How far the path's end cameras are from the reference cameras whose photos condition
    them; the photos line up with the rendered end frames only where they coincide."""
    baseline = float(np.linalg.norm(photos[1].camera.c2w[:3, 3] - photos[0].camera.c2w[:3, 3]))
    ends = {}
    messages = []
    for end, photo, c2w, label in (
        ("first", photos[0], first_c2w, "A"),
        ("last", photos[1], last_c2w, "B"),
    ):
        distance, degrees = pose_offset(photo.camera.c2w, c2w)
        relative = distance / baseline if baseline > 0 else distance
        aligned = relative <= PHOTO_ALIGN_DISTANCE and degrees <= PHOTO_ALIGN_DEGREES
        ends[end] = {
            "photo": label,
            "aligned": aligned,
            "distance_baselines": round(relative, 4),
            "angle_deg": round(degrees, 3),
        }
        if not aligned:
            messages.append(
                f"the path's {end} camera is {relative:.2f} reference baselines and "
                f"{degrees:.1f} deg from reference camera {label}, so photo {label} does not "
                f"line up with the video's {end} frame"
            )
    return {
        **ends,
        "aligned": not messages,
        "message": ("; ".join(messages) + ". Start and end the path at the reference cameras.")
        if messages
        else "",
    }

"""The fit_scene handler: a scene and a video along known cameras -> a new scene of its own.

The video is a render_video job's folder (its frames and the cameras it saved, cameras.npz) or
arrays in the message (frames, c2w, K). The parent scene is never changed: the fit works on
copies, and a cancelled or failed fit leaves the store as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import FIT_SCENE, ID_PATTERN, MAX_CAMERAS

from ..devices import default_device
from ..fit import FitSettings, fit_inputs, fit_scene
from ..scene.ply import ply_bytes
from .contract import JobContext, JobOutput, JobRequest
from .frame_store import (
    FRAME_KINDS,
    MANIFEST,
    decode_frame,
    frame_name,
    read_manifest,
    read_path_background,
    read_path_cameras,
)
from .image_limits import MAX_PIXELS
from .scene_jobs import _camera_json, _scene_arrays, validate_cameras

# Defaults by device (the params' null): a CPU fit must finish in minutes (README, bench).
CUDA_DEFAULTS = {"iterations": 3000, "downscale": 1.0, "max_views": None, "refine_prior": True}
CPU_DEFAULTS = {"iterations": 150, "downscale": 4.0, "max_views": 7, "refine_prior": False}
RESULT_FILE, ERROR_FILE = "result.json", "error.json"  # a job folder's record (service/results)


def _error(code: ErrorCode, message: str, hint: str) -> VideoSceneError:
    return VideoSceneError(code, message, hint)


@dataclass
class Video:
    """Frames (read on demand) and their cameras."""

    count: int
    width: int
    height: int
    c2w: np.ndarray
    K: np.ndarray
    read: Callable[[int], np.ndarray]
    source: dict[str, Any]
    scene_id: str | None = None  # the scene a render job rendered
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # what frames show where empty


def _check_counts(frames: int, c2w: np.ndarray, K: np.ndarray) -> None:
    if not (len(c2w) == len(K) == frames):
        raise _error(
            ErrorCode.BAD_CAMERA,
            f"{frames} frames but {len(c2w)} c2w and {len(K)} K: one camera per frame.",
            "Send as many cameras as frames, in the same order.",
        )
    if not 1 <= frames <= MAX_CAMERAS:
        raise _error(
            ErrorCode.BAD_PARAMS,
            f"{frames} frames; a fit takes 1..{MAX_CAMERAS}.",
            "Send at least one frame.",
        )


def video_from_job(jobs_dir: Path, job_id: str, scene_id: str | None, which: str) -> Video:
    """A render_video job's frames and cameras (a finished or an interrupted job)."""
    unknown = _error(
        ErrorCode.UNKNOWN_JOB,
        f"No finished render_video job {job_id!r} with frames on this backend.",
        "Give the id of a render_video job of this backend that has ended (done, cancelled or "
        "interrupted); a pool front end keeps renders apart from its replicas (docs/pool.md).",
    )
    if not ID_PATTERN.fullmatch(job_id):
        raise unknown
    root = jobs_dir.resolve()
    folder = root / job_id
    if folder.resolve().parent != root or not (folder / MANIFEST).is_file():
        raise unknown
    record = next(
        (folder / name for name in (RESULT_FILE, ERROR_FILE) if (folder / name).is_file()), None
    )
    try:
        kind = json.loads(record.read_text()).get("kind") if record else None
        render_scene, c2w, K = read_path_cameras(folder)
        background = read_path_background(folder)
    except (OSError, ValueError, KeyError, AttributeError):
        raise unknown from None
    if kind != "render_video":
        raise unknown
    if scene_id is not None and render_scene != scene_id:
        raise _error(
            ErrorCode.BAD_PARAMS,
            f"Render job {job_id} rendered scene {render_scene!r}, not {scene_id!r}.",
            "Fit a scene to a render of that same scene (or leave scene_id out).",
        )
    manifest = read_manifest(folder)
    kinds = [k for k in manifest.kinds if k in FRAME_KINDS]
    chosen = ("refined" if "refined" in kinds else "coarse") if which == "auto" else which
    if chosen not in kinds:
        raise _error(
            ErrorCode.BAD_PARAMS,
            f"Render job {job_id} has no {chosen} frames (it has {', '.join(kinds)}).",
            "Ask for video_frames 'auto' or 'coarse'; unrefined renders have coarse frames only.",
        )
    if manifest.ready < 1:
        raise _error(
            ErrorCode.NOT_READY,
            f"Render job {job_id} finished no frames.",
            "Render the path again; a fit needs at least one frame.",
        )
    _check_counts(manifest.count, c2w, K)
    validate_cameras(c2w.astype(np.float64), K.astype(np.float64), manifest.width, manifest.height)

    def read(index: int) -> np.ndarray:
        rgb = decode_frame((folder / chosen / frame_name(index)).read_bytes())
        if rgb.shape != (manifest.height, manifest.width, 3):
            raise _error(
                ErrorCode.INTERNAL,
                f"Frame {index} of job {job_id} is not {manifest.width}x{manifest.height}.",
                "The job's folder was changed by hand; render the path again.",
            )
        return rgb

    ready = manifest.ready  # an interrupted job's finished frames are a prefix of the path
    source = {"kind": "render_job", "job_id": job_id, "frames": chosen, "used": ready}
    return Video(
        ready,
        manifest.width,
        manifest.height,
        c2w[:ready],
        K[:ready],
        read,
        source,
        render_scene,
        background,
    )


def video_from_message(request: JobRequest) -> Video:
    missing = [name for name in ("frames", "c2w", "K") if name not in request.arrays]
    if missing:
        raise _error(
            ErrorCode.BAD_PARAMS,
            f"fit_scene without render_job needs the arrays frames, c2w and K; missing "
            f"{', '.join(missing)}.",
            "Send frames (N, H, W, 3) uint8 with c2w (N, 4, 4) and K (N, 3, 3), or a render_job.",
        )
    frames = np.asarray(request.arrays["frames"])
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise _error(
            ErrorCode.BAD_IMAGE,
            f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}.",
            "Send RGB frames of 8 bits per channel.",
        )
    count, height, width = frames.shape[:3]
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width * height > MAX_PIXELS:
        raise _error(
            ErrorCode.BAD_IMAGE,
            f"Frames of {width}x{height} pixels; 16..4096 per side are allowed.",
            "Resize the frames.",
        )
    c2w = np.asarray(request.arrays["c2w"], dtype=np.float64)
    K = np.asarray(request.arrays["K"], dtype=np.float64)
    _check_counts(count, c2w, K)
    validate_cameras(c2w, K, width, height)
    return Video(count, width, height, c2w, K, lambda i: frames[i], {"kind": "frames"})


def settings_from(
    params: dict[str, Any], device: str, background: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> FitSettings:
    defaults = CUDA_DEFAULTS if device.startswith("cuda") else CPU_DEFAULTS
    value = lambda name: defaults[name] if params[name] is None else params[name]  # noqa: E731
    return FitSettings(
        iterations=value("iterations"),
        downscale=float(value("downscale")),
        refine_prior=bool(value("refine_prior")),
        ssim_weight=params["ssim_weight"],
        device=device,
        background=background,
    )


def fit_scene_job(ctx: JobContext, request: JobRequest) -> JobOutput:
    params = FIT_SCENE.validate(request.params)
    if params["render_job"] is not None:
        video = video_from_job(
            ctx.jobs_dir, params["render_job"], params["scene_id"], params["video_frames"]
        )
        scene_id = params["scene_id"] or video.scene_id
    else:
        if params["scene_id"] is None:
            raise _error(
                ErrorCode.BAD_PARAMS,
                "fit_scene with frames in the message needs the param 'scene_id'.",
                "Name the scene the frames were made from.",
            )
        video = video_from_message(request)
        scene_id = params["scene_id"]
    parent = ctx.scenes.get(scene_id)
    device = str(default_device())
    settings = settings_from(params, device, video.background)
    max_views = params["max_views"]
    if max_views is None:
        max_views = (CUDA_DEFAULTS if device.startswith("cuda") else CPU_DEFAULTS)["max_views"]

    started = time.perf_counter()
    inputs = fit_inputs(
        video.read,
        video.c2w,
        video.K,
        video.count,
        (video.width, video.height),
        parent,
        settings.downscale,
        max_views,
        params["use_photos"],
    )
    indices = inputs.indices
    fitted, report = fit_scene(
        parent,
        inputs.views,
        settings,
        ctx.progress,
        ctx.check_cancelled,
        inputs.coverage,
        inputs.holes,
    )
    fitted.meta.update(
        parent_scene=scene_id,
        source=video.source["kind"],
        source_job=video.source.get("job_id", ""),
        source_frames=video.source.get("frames", "message"),
    )
    new_id = ctx.scenes.put(fitted)
    ctx.progress("write", 0.0, "writing scene.ply")
    ply = ply_bytes(fitted)
    (ctx.work_dir / "scene.ply").write_bytes(ply)
    ctx.progress("write", 1.0, "")
    meta = {
        "scene_id": new_id,
        "parent_scene": scene_id,
        "source": video.source,
        "num_gaussians": fitted.num_gaussians,
        "reference_cameras": [_camera_json(c) for c in fitted.reference_cameras],
        "fit": {
            **report.to_json(),
            "device": device,
            "downscale": settings.downscale,
            "refine_prior": settings.refine_prior,
            "frames_used": indices if len(indices) <= 64 else len(indices),
            # fewer than max_views asked for when their images would not fit in memory
            "frames_wanted": inputs.views_wanted,
            "frame_size": [video.width, video.height],
        },
        "timings": {"total": round(time.perf_counter() - started, 3)},
    }
    return JobOutput(
        meta=meta, arrays=_scene_arrays(fitted), blobs={"scene.ply": ply}, files=["scene.ply"]
    )

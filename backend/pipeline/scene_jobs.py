"""Handlers for build_scene, load_scene and render_video."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import BUILD_SCENE, LOAD_SCENE, MAX_CAMERAS, RENDER_VIDEO

from ..devices import default_device
from ..priors import select_prior
from ..scene.gaussians import SH_C0
from ..scene.ply import load_ply, ply_bytes
from .contract import JobContext, JobOutput, JobRequest
from .frame_store import write_path_cameras
from .images import decode_photo
from .path_video import PathRequest, PathVideo, Refinement
from .photo_meta import resolve_fovs


def _bad_params(message: str, hint: str) -> VideoSceneError:
    return VideoSceneError(ErrorCode.BAD_PARAMS, message, hint)


def _scene_arrays(scene) -> dict[str, np.ndarray]:
    colours = (SH_C0 * scene.sh[:, 0] + 0.5).clamp(0, 1)
    return {
        "means": scene.means.detach().cpu().float().numpy(),
        "quats": scene.quats.detach().cpu().float().numpy(),
        "scales": scene.scales.detach().cpu().float().numpy(),
        "opacities": scene.opacities.detach().cpu().float().numpy(),
        "colors": colours.detach().cpu().float().numpy(),
    }


def _camera_json(camera) -> dict[str, Any]:
    return {
        "c2w": np.asarray(camera.c2w).tolist(),
        "K": np.asarray(camera.K).tolist(),
        "width": camera.width,
        "height": camera.height,
    }


def _fov_meta(prior_meta: dict[str, Any], sources: list[str]) -> dict[str, Any]:
    """Photo A's horizontal field of view and its source (the one the panel shows first), and
    both photos' (they differ when the photos come from different cameras)."""
    per_photo = [prior_meta.get("fov_deg"), prior_meta.get("fov_deg_b")]
    per_photo = [None if fov is None else round(float(fov), 3) for fov in per_photo]
    return {
        "fov_source": sources[0],
        "fov_deg": per_photo[0],
        "fov_sources": sources,
        "fov_deg_per_photo": per_photo,
    }


def _photo_json(photo) -> dict[str, Any]:
    height, width = photo.pixels.shape[:2]
    return {
        "format": photo.format,
        "width": width,  # upright
        "height": height,
        "orientation": photo.orientation,
        "colour": photo.colour,
    }


def build_scene(ctx: JobContext, request: JobRequest) -> JobOutput:
    params = BUILD_SCENE.validate(request.params)
    missing = [name for name in ("image_0", "image_1") if name not in request.blobs]
    if missing:
        raise _bad_params(
            f"build_scene needs two photos; missing {', '.join(missing)}.",
            "Send both photos as blobs image_0 and image_1.",
        )
    timings: dict[str, float] = {}
    start = time.perf_counter()
    photos = [decode_photo(request.blobs[name], name) for name in ("image_0", "image_1")]
    fovs, fov_sources = resolve_fovs(
        params["fov_deg"],
        [photo.exif_fov_deg for photo in photos],
        [photo.pixels.shape[:2] for photo in photos],
    )
    prior, reason = select_prior(
        params["prior"], ctx.checkpoints_dir, ctx.models, params["pose_refine_steps"]
    )
    timings["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    scene = prior.build([photo.pixels for photo in photos], fovs, ctx.progress, ctx.check_cancelled)
    scene.validate()
    timings["prior"] = time.perf_counter() - start
    scene_id = ctx.scenes.put(scene)
    ctx.progress("write", 0.0, "writing scene.ply")
    ply = ply_bytes(scene)
    (ctx.work_dir / "scene.ply").write_bytes(ply)
    ctx.progress("write", 1.0, "")
    meta = {
        "scene_id": scene_id,
        "prior": prior.name,
        "prior_reason": reason,
        "prior_meta": {
            k: v for k, v in scene.meta.items() if isinstance(v, str | int | float | bool)
        },
        "num_gaussians": scene.num_gaussians,
        "reference_cameras": [_camera_json(c) for c in scene.reference_cameras],
        **_fov_meta(scene.meta, fov_sources),
        "photos": [_photo_json(photo) for photo in photos],
        "timings": timings,
    }
    return JobOutput(
        meta=meta, arrays=_scene_arrays(scene), blobs={"scene.ply": ply}, files=["scene.ply"]
    )


def load_scene(ctx: JobContext, request: JobRequest) -> JobOutput:
    if "scene.ply" not in request.blobs:  # checked before the params: the blob is the job
        raise _bad_params(
            "load_scene needs the blob 'scene.ply'.",
            "Send the PLY the build_scene result contained.",
        )
    params = LOAD_SCENE.validate(request.params)
    scene = load_ply(request.blobs["scene.ply"])
    scene_id = ctx.scenes.put(scene, params["scene_id"])
    return JobOutput(
        meta={
            "scene_id": scene_id,
            "num_gaussians": scene.num_gaussians,
            "reference_cameras": [_camera_json(c) for c in scene.reference_cameras],
        }
    )


def validate_cameras(c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> None:
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or K.shape != (len(c2w), 3, 3):
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"Cameras must be c2w (N, 4, 4) and K (N, 3, 3); got {c2w.shape} and {K.shape}.",
            "Send one c2w and one K per frame.",
        )
    if not 1 <= len(c2w) <= MAX_CAMERAS:
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"{len(c2w)} cameras; 1..{MAX_CAMERAS} are allowed.",
            "Shorten the camera path, or render it in parts.",
        )
    if not (np.isfinite(c2w).all() and np.isfinite(K).all()):
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            "Cameras contain NaN or infinity.",
            "Check the camera's animation.",
        )
    rotations = c2w[:, :3, :3]
    orthonormal = (
        np.abs(rotations @ rotations.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2)) < 1e-3
    )
    right_handed = np.linalg.det(rotations) > 0
    bad = np.nonzero(~(orthonormal & right_handed))[0]
    if len(bad):
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"Camera {bad[0]} is not a rigid transform (scaled or mirrored).",
            "Divide out the scene scale before sending cameras.",
        )
    if not ((K[:, 0, 0] > 0) & (K[:, 1, 1] > 0)).all():
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA, "Focal lengths must be positive.", "Check the camera intrinsics."
        )
    if not np.allclose(c2w[:, 3], [0, 0, 0, 1], atol=1e-6):
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            "The last row of c2w must be (0, 0, 0, 1).",
            "Send rigid 4x4 matrices.",
        )


def render_video(ctx: JobContext, request: JobRequest) -> JobOutput:
    """One output frame per camera, streamed to the job's folder window by window
    (backend/pipeline/path_video.py); the result carries the metadata, the frames are fetched
    by range (fetch_frames)."""
    params = RENDER_VIDEO.validate(request.params)
    width, height = params["width"], params["height"]
    device = default_device()
    refine_options = None
    if params["refine"]:  # checked now, not after the coarse render
        from ..video.memory import check_mode_fits_device
        from ..video.refiner import RefineOptions

        refine_options = RefineOptions.from_params(params)
        check_mode_fits_device(refine_options.memory_mode, device)
    scene = ctx.scenes.get(params["scene_id"])
    if "c2w" not in request.arrays or "K" not in request.arrays:
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            "render_video needs the arrays c2w and K.",
            "Send the camera path as c2w (N, 4, 4) and K (N, 3, 3).",
        )
    c2w = np.asarray(request.arrays["c2w"], dtype=np.float64)
    K = np.asarray(request.arrays["K"], dtype=np.float64)
    validate_cameras(c2w, K, width, height)
    write_path_cameras(ctx.work_dir, params["scene_id"], c2w, K, tuple(params["background"]))
    path = PathRequest(
        c2w, K, width, height, tuple(params["background"]), params["near"], params["far"]
    )
    refinement, video_meta = _refinement(ctx, scene, path, refine_options)

    started = time.perf_counter()
    report = PathVideo(ctx, scene, path, refinement, device).run()
    video_meta = dict(video_meta)
    if refinement is not None:
        video_meta["video_model"]["timings"] = {
            k: round(v, 3) for k, v in report.refine_timings.items()
        }
        video_meta["video_model"]["peak_memory_bytes"] = report.peak_memory_bytes
        video_meta["video_model"]["sampler"] = report.sampler
        if report.photo_coverage:
            video_meta["photo_conditions"]["coverage"] = {
                k: round(v, 3) for k, v in report.photo_coverage.items()
            }
    timings = {k: round(v, 3) for k, v in report.timings.items()}
    timings["total"] = round(time.perf_counter() - started, 3)
    meta = {
        "refined": refinement is not None,
        "refine_message": video_meta.get("refine_message", ""),
        "video_model": video_meta.get("video_model", {}),
        "weights_missing": video_meta.get("weights_missing", []),
        "photo_conditions": video_meta.get("photo_conditions"),
        "num_frames": path.count,
        "width": width,
        "height": height,
        **report.meta(),
        "render_device": str(device),
        "timings": timings,
    }
    return JobOutput(meta=meta)


def _refinement(
    ctx: JobContext, scene, path: PathRequest, options
) -> tuple[Refinement | None, dict[str, Any]]:
    """The loaded video model and its conditions, or None and the reason in plain words."""
    if options is None:
        return None, {
            "refined": False,
            "refine_message": "Refinement was not requested (refine: false).",
        }
    from ..video.stage import (
        ReferencePhoto,
        check_photos,
        load_refiner,
        photo_alignment,
        video_model_meta,
        weights_missing,
    )

    missing = weights_missing(ctx)
    if missing is not None:
        return None, missing
    check_photos(options, scene.reference_images)
    ctx.models.release("prior:")  # the prior's network and the video model may not both fit
    refiner, plan = load_refiner(ctx, options)
    meta: dict[str, Any] = {
        "refine_message": "",
        "video_model": video_model_meta(refiner, options, plan),
    }
    photos = None
    if options.condition_source == "photos":
        photos = [
            ReferencePhoto.of(image, camera)
            for image, camera in zip(
                scene.reference_images[:2], scene.reference_cameras[:2], strict=True
            )
        ]
        meta["photo_conditions"] = photo_alignment(photos, path.c2w[0], path.c2w[-1])
    return Refinement(refiner, options, photos), meta

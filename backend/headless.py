"""`videoscene-backend run`: the main job end to end without Blender, through the real protocol.

Two photos -> build_scene -> the default flythrough between the reference cameras ->
render_video -> frames/, coarse/, scene.ply, video.mp4 and result.json in the output folder;
with --fit, then fit_scene on that render -> scene_fitted.ply.
Without --address it starts a backend in this process on a free loopback port.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from videoscene_protocol.client import (
    BackendClient,
    ErrorEvent,
    FramesReadyEvent,
    ProgressEvent,
    ResultEvent,
    StateEvent,
)
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import BUILD_SCENE, FIT_SCENE, MAX_CAMERAS, RENDER_VIDEO

from .param_flags import add_param_flags, params_from_flags
from .paths import checkpoints_dir
from .pipeline.frame_store import decode_frame, frame_name
from .scene.flythrough import default_flythrough
from .scene.gaussians import PinholeCamera

DEFAULT_FPS = 8.0  # the seed writes its 49-frame videos at 8 fps
JOB_TIMEOUT_S = 6 * 3600


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="two photos -> frames, PLY and mp4 (headless)")
    parser.add_argument("--image-a", type=Path, required=True)
    parser.add_argument("--image-b", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--frames",
        type=_frame_count,
        default=49,
        help=f"frames of the flythrough, one output frame each (1-{MAX_CAMERAS}, default 49)",
    )
    parser.add_argument(
        "--fps", type=_positive, default=DEFAULT_FPS, help="frame rate of video.mp4 (default 8)"
    )
    add_param_flags(parser, BUILD_SCENE)
    add_param_flags(parser, RENDER_VIDEO, skip=("scene_id",))
    parser.add_argument(
        "--fit",
        action="store_true",
        help="after the render, fit a new scene to its frames (fit_scene) -> scene_fitted.ply",
    )
    add_param_flags(parser, FIT_SCENE, skip=("scene_id", "render_job"))
    parser.add_argument(
        "--address", default=None, help="use a running backend instead of starting one"
    )
    parser.add_argument("--checkpoints", type=Path, default=None)
    parser.set_defaults(func=_run)


def _frame_count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_CAMERAS:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_CAMERAS}, got {value}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0 < value <= 1000):
        raise argparse.ArgumentTypeError(f"must be a frame rate in (0, 1000], got {text}")
    return value


def _print_progress(event: ProgressEvent) -> None:
    message = f" {event.message}" if event.message else ""
    print(f"  {event.stage:<7} {event.fraction:4.0%}{message}", flush=True)


def scaled_camera(camera: dict, width: int, height: int) -> PinholeCamera:
    """A reference camera at another frame size, scaled uniformly so the new frame is covered
    by the reference view (same optical centre, no stretch: a different aspect crops)."""
    K = np.array(camera["K"], dtype=np.float64)
    scale = max(width / camera["width"], height / camera["height"])
    K[:2] *= scale
    K[0, 2] += (width - scale * camera["width"]) / 2
    K[1, 2] += (height - scale * camera["height"]) / 2
    return PinholeCamera(np.array(camera["c2w"], dtype=np.float64), K, width, height)


def flythrough_cameras(
    references: list[dict], frames: int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    cam0, cam1 = (scaled_camera(c, width, height) for c in references)
    if frames == 1:
        return cam0.c2w[None], cam0.K[None]
    return default_flythrough(cam0, cam1, frames)


def run_main_job(client: BackendClient, args: argparse.Namespace) -> dict:
    out: Path = args.out
    print(f"Building the scene from {args.image_a.name} and {args.image_b.name} ...", flush=True)
    blobs = {"image_0": args.image_a.read_bytes(), "image_1": args.image_b.read_bytes()}
    build_id = client.submit("build_scene", params_from_flags(args, BUILD_SCENE), blobs=blobs)
    scene = client.wait(build_id, JOB_TIMEOUT_S, _print_progress)
    meta = scene.meta
    print(
        f"  {meta['num_gaussians']} Gaussians ({meta['prior']}: {meta['prior_reason']})", flush=True
    )
    prior_meta = meta.get("prior_meta", {})
    if prior_meta.get("weak"):  # the user should hear it here, not only find it in result.json
        print(f"  Weak build: {prior_meta.get('hint', '')}", flush=True)
    (out / "scene.ply").write_bytes(scene.blobs["scene.ply"])

    params = {**params_from_flags(args, RENDER_VIDEO), "scene_id": meta["scene_id"]}
    width = params.get("width", RENDER_VIDEO["width"].default)
    height = params.get("height", RENDER_VIDEO["height"].default)
    c2w, K = flythrough_cameras(meta["reference_cameras"], args.frames, width, height)
    print(f"Rendering {args.frames} frames at {width}x{height} ...", flush=True)
    render_id = client.submit("render_video", params, arrays={"c2w": c2w, "K": K})
    video = VideoDownload(client, render_id, out, args.fps).run()
    summary = {
        # The build job's meta as it is (fov_source, prior_meta, photos, timings ...): what a
        # user who looks into result.json after a poor scene needs, as the job's own meta has it.
        "scene": dict(meta),
        "video": video.meta,
        "fps": args.fps,
        "backend_job_dirs": {"build_scene": scene.job_dir, "render_video": video.job_dir},
    }
    if args.fit:
        print("Fitting a new scene to the video ...", flush=True)
        fit_params = {**params_from_flags(args, FIT_SCENE), "render_job": render_id}
        fitted = client.wait(client.submit("fit_scene", fit_params), JOB_TIMEOUT_S, _print_progress)
        (out / "scene_fitted.ply").write_bytes(fitted.blobs["scene.ply"])
        fit = fitted.meta["fit"]
        print(
            f"  {fitted.meta['num_gaussians']} Gaussians ({fit['seeded_gaussians']} seeded), "
            f"PSNR {fit['psnr_start_db']} -> {fit['psnr_end_db']} dB on its views",
            flush=True,
        )
        summary["fitted_scene"] = {
            k: fitted.meta[k]
            for k in ("scene_id", "parent_scene", "source", "num_gaussians", "fit")
        }
        summary["backend_job_dirs"]["fit_scene"] = fitted.job_dir
    (out / "result.json").write_text(json.dumps(summary, indent=1))
    if video.meta.get("refined"):
        print("Refined with the video model.")
    else:
        print(f"Note: {video.meta.get('refine_message')}")
    return summary


class VideoDownload:
    """Fetches a render job's frames window by window as they are announced: PNG files to
    frames/ (the video's frames: refined, else coarse) and coarse/, and video.mp4 encoded as
    they arrive. Holds one fetched range at a time, whatever the path's length."""

    def __init__(self, client: BackendClient, job_id: str, out: Path, fps: float) -> None:
        self.client, self.job_id, self.out, self.fps = client, job_id, out, fps
        self.fetched: dict[str, int] = {}  # kind -> frames 0..n-1 are on disk here
        self.writer = None

    def run(self):
        try:
            while True:
                for event in self.client.poll(timeout_ms=100):
                    if isinstance(event, ErrorEvent) and event.job_id in (self.job_id, None):
                        raise event.error
                    if event.job_id != self.job_id:
                        continue
                    if isinstance(event, ProgressEvent):
                        _print_progress(event)
                    elif isinstance(event, FramesReadyEvent):
                        print(f"  window {event.window + 1}/{event.windows} ready", flush=True)
                        self._fetch_until(event.ready, event.kinds)
                    elif isinstance(event, ResultEvent):
                        manifest = event.result.meta["frames"]
                        self._fetch_until(manifest["ready"], manifest["kinds"])
                        return event.result
                    elif isinstance(event, StateEvent) and event.state == "cancelled":
                        raise VideoSceneError(ErrorCode.CANCELLED, "The render was cancelled.")
        finally:
            if self.writer is not None:
                self.writer.close()

    def _fetch_until(self, ready: int, kinds: list[str]) -> None:
        video_kind = "refined" if "refined" in kinds else "coarse"
        for kind in kinds:
            folders = [self.out / "coarse"] if kind == "coarse" else []
            if kind == video_kind:
                folders.append(self.out / "frames")
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
            done = self.fetched.get(kind, 0)
            while done < ready:
                count = min(self.client.max_fetch_frames, ready - done)
                frames = self.client.fetch_frames(self.job_id, done, count, kind).frames
                for offset, data in enumerate(frames):
                    for folder in folders:
                        (folder / frame_name(done + offset)).write_bytes(data)
                    if kind == video_kind:
                        self._append_to_video(data)
                done += len(frames)
            self.fetched[kind] = done

    def _append_to_video(self, png: bytes) -> None:
        import imageio.v2 as imageio

        rgb = decode_frame(png)
        if self.writer is None:
            self.writer = imageio.get_writer(
                self.out / "video.mp4", fps=self.fps, codec="libx264", quality=8, macro_block_size=8
            )
        self.writer.append_data(rgb)


def _run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    for image in (args.image_a, args.image_b):
        if not image.is_file():
            print(f"error: {image} does not exist", file=sys.stderr)
            return 2
    handle = None
    address = args.address
    if address is None:
        from .service import start_in_thread

        handle = start_in_thread(args.out / "backend", args.checkpoints or checkpoints_dir())
        address = handle.address
    client = BackendClient(address)
    try:
        client.connect()
        run_main_job(client, args)
        fitted = ", scene_fitted.ply" if args.fit else ""
        print(f"Wrote frames/, coarse/, scene.ply{fitted}, video.mp4 and result.json to {args.out}")
        return 0
    except VideoSceneError as error:
        print(f"error: {error.message}\nhint: {error.hint}", file=sys.stderr)
        return 1
    finally:
        client.close()
        if handle is not None:
            handle.stop()

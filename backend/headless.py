"""`videoscene-backend run`: the main job end to end without Blender, through the real protocol.

Two photos -> build_scene -> the default flythrough between the reference cameras ->
render_video -> frames/, coarse/, scene.ply, video.mp4 and result.json in the output folder.
Without --address it starts a backend in this process on a free loopback port.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from videoscene_protocol.client import BackendClient, ProgressEvent
from videoscene_protocol.errors import VideoSceneError
from videoscene_protocol.params import BUILD_SCENE, RENDER_VIDEO

from .param_flags import add_param_flags, params_from_flags
from .paths import checkpoints_dir
from .scene.flythrough import default_flythrough
from .scene.gaussians import PinholeCamera

FPS = 8  # the seed writes its 49-frame videos at 8 fps
JOB_TIMEOUT_S = 6 * 3600


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="two photos -> frames, PLY and mp4 (headless)")
    parser.add_argument("--image-a", type=Path, required=True)
    parser.add_argument("--image-b", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=49)
    add_param_flags(parser, BUILD_SCENE)
    add_param_flags(parser, RENDER_VIDEO, skip=("scene_id",))
    parser.add_argument(
        "--address", default=None, help="use a running backend instead of starting one"
    )
    parser.add_argument("--checkpoints", type=Path, default=None)
    parser.set_defaults(func=_run)


def _print_progress(event: ProgressEvent) -> None:
    message = f" {event.message}" if event.message else ""
    print(f"  {event.stage:<7} {event.fraction:4.0%}{message}", flush=True)


def scaled_camera(camera: dict, width: int, height: int) -> PinholeCamera:
    """A reference camera with its intrinsics rescaled to the requested frame size."""
    K = np.array(camera["K"], dtype=np.float64)
    K[0] *= width / camera["width"]
    K[1] *= height / camera["height"]
    return PinholeCamera(np.array(camera["c2w"], dtype=np.float64), K, width, height)


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
    (out / "scene.ply").write_bytes(scene.blobs["scene.ply"])

    params = {**params_from_flags(args, RENDER_VIDEO), "scene_id": meta["scene_id"]}
    width = params.get("width", RENDER_VIDEO["width"].default)
    height = params.get("height", RENDER_VIDEO["height"].default)
    cam0, cam1 = (scaled_camera(c, width, height) for c in meta["reference_cameras"])
    c2w, K = default_flythrough(cam0, cam1, args.frames)
    print(f"Rendering {args.frames} frames at {width}x{height} ...", flush=True)
    render_id = client.submit("render_video", params, arrays={"c2w": c2w, "K": K})
    video = client.wait(render_id, JOB_TIMEOUT_S, _print_progress)
    _write_frames(out / "frames", video.arrays["frames"])
    _write_frames(out / "coarse", video.arrays["coarse"])
    _write_mp4(out / "video.mp4", video.arrays["frames"])
    summary = {
        "scene": {
            k: meta[k]
            for k in ("scene_id", "prior", "prior_reason", "num_gaussians", "reference_cameras")
        },
        "video": video.meta,
        "backend_job_dirs": {"build_scene": scene.job_dir, "render_video": video.job_dir},
    }
    (out / "result.json").write_text(json.dumps(summary, indent=1))
    if video.meta.get("refined"):
        print("Refined with the video model.")
    else:
        print(f"Note: {video.meta.get('refine_message')}")
    return summary


def _write_frames(folder: Path, frames: np.ndarray) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        cv2.imwrite(
            str(folder / f"{index:04d}.png"),
            cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR),
        )


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    import imageio.v2 as imageio

    imageio.mimwrite(path, list(frames), fps=FPS, codec="libx264", quality=8, macro_block_size=8)


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
        print(f"Wrote frames/, coarse/, scene.ply, video.mp4 and result.json to {args.out}")
        return 0
    except VideoSceneError as error:
        print(f"error: {error.message}\nhint: {error.hint}", file=sys.stderr)
        return 1
    finally:
        client.close()
        if handle is not None:
            handle.stop()

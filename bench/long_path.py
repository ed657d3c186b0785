"""Benchmark: long camera paths stream in windows at a constant cost per frame and bounded memory.

CPU (always): the tiny test video model refines paths of 49, 245 and 980 frames at 640x360
through the real service and protocol (render_video, frames_ready events, fetch_frames), each
path in a fresh process, after a warm-up job that loads the model. Figures: seconds per output
frame at each length, wall time and the process's CPU time (which other programs on a shared
machine disturb less) (baseline: the 49-frame path; the 980-frame figure over it should stay
<= 1.3) and the process's peak RSS (VmHWM: the service and the client inside one process) for
245 vs 980 frames (growth should stay <= 10 %). The job's own timings split render, model and
PNG writing, so the encode cost is measured against the model time in the same run.

CUDA (when a GPU is present, or --chain-on-cpu to exercise the same code with the tiny model):
the real-size CogVideoX-5B-shaped transformer and VAE with random weights (timing and memory do
not depend on the values) refine one window (49 frames) and a 3-window chain (145 frames) of a
synthetic scene at 1280x720 through the window loop: seconds and peak GPU memory per window.

Prints one final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "video"))
sys.path.insert(0, str(ROOT / "bench"))


def synthetic_scene(count: int, seed: int = 0):
    """Gaussians filling a box 3-6 units in front of the path (OpenCV: +z forward)."""
    from videoscene_backend.scene.gaussians import GaussianScene

    g = torch.Generator().manual_seed(seed)
    means = torch.rand(count, 3, generator=g) * torch.tensor([6.0, 3.5, 3.0])
    means -= torch.tensor([3.0, 1.75, -3.0])
    return GaussianScene(
        means=means,
        quats=torch.nn.functional.normalize(torch.randn(count, 4, generator=g), dim=-1),
        scales=torch.rand(count, 3, generator=g) * 0.06 + 0.03,
        opacities=torch.rand(count, generator=g) * 0.5 + 0.5,
        sh=torch.randn(count, 1, 3, generator=g) * 0.6,
    )


def sideways_path(count: int, width: int, height: int) -> dict[str, np.ndarray]:
    """A sideways dolly with a slight pan: one camera per frame, 60 degrees horizontal FOV."""
    t = np.linspace(0.0, 1.0, count)
    c2w = np.tile(np.eye(4), (count, 1, 1))
    yaw = np.radians(-8.0 + 16.0 * t)
    c2w[:, 0, 0], c2w[:, 0, 2] = np.cos(yaw), np.sin(yaw)
    c2w[:, 2, 0], c2w[:, 2, 2] = -np.sin(yaw), np.cos(yaw)
    c2w[:, 0, 3] = -1.0 + 2.0 * t
    focal = width / (2 * np.tan(np.radians(30.0)))
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    return {"c2w": c2w, "K": np.tile(K, (count, 1, 1))}


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource  # not Linux: ru_maxrss (bytes on macOS)

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# ---- one path in a fresh process (CPU) -----------------------------------------------------
def cpu_seconds() -> float:
    """CPU time of this process (all threads): less sensitive than wall time to other
    programs sharing the machine."""
    times = os.times()
    return times.user + times.system


def run_job(client, scene_id: str, count: int, width: int, height: int) -> dict:
    """Submit a render of `count` frames and stream every refined frame back, range by range,
    as the client would; returns wall and CPU time and the job's metadata."""
    from videoscene_protocol.client import ErrorEvent, FramesReadyEvent, ResultEvent

    params = {"scene_id": scene_id, "width": width, "height": height}
    started, cpu_started = time.perf_counter(), cpu_seconds()
    job = client.submit("render_video", params, arrays=sideways_path(count, width, height))
    fetched, fetched_bytes, first_window_s = 0, 0, None
    while True:
        for event in client.poll(timeout_ms=100):
            if isinstance(event, ErrorEvent):
                raise event.error
            ready = None
            if isinstance(event, FramesReadyEvent) and event.job_id == job:
                ready = event.ready
                first_window_s = first_window_s or time.perf_counter() - started
            elif isinstance(event, ResultEvent) and event.job_id == job:
                ready = event.result.meta["frames"]["ready"]
            while ready is not None and fetched < ready:
                frames = client.fetch_frames(
                    job, fetched, min(client.max_fetch_frames, ready - fetched), "refined"
                ).frames
                fetched += len(frames)
                fetched_bytes += sum(len(f) for f in frames)
                del frames
            if isinstance(event, ResultEvent) and event.job_id == job:
                return {
                    "wall_s": time.perf_counter() - started,
                    "cpu_s": cpu_seconds() - cpu_started,
                    "first_window_s": first_window_s,
                    "fetched": fetched,
                    "fetched_bytes": fetched_bytes,
                    "meta": event.result.meta,
                }


def child(args: argparse.Namespace) -> None:
    from videoscene_backend.service import start_in_thread
    from videoscene_protocol.client import BackendClient

    out = Path(tempfile.mkdtemp(prefix="long-path-"))
    handle = start_in_thread(out, args.checkpoints)
    client = BackendClient(handle.address, heartbeat_timeout_s=120.0)
    try:
        client.connect(timeout_s=30)
        scene_id = handle.service.scenes.put(synthetic_scene(args.gaussians))
        run_job(client, scene_id, 9, args.width, args.height)  # loads the model
        rss_after_warmup = peak_rss_bytes()
        job = run_job(client, scene_id, args.child, args.width, args.height)
    finally:
        client.close()
        handle.stop()
    meta = job["meta"]
    assert job["fetched"] == args.child == meta["frames"]["ready"], job["fetched"]
    print(
        json.dumps(
            {
                "frames": args.child,
                "wall_s": round(job["wall_s"], 2),
                "s_per_frame": round(job["wall_s"] / args.child, 4),
                "cpu_s_per_frame": round(job["cpu_s"] / args.child, 4),
                "first_window_s": round(job["first_window_s"], 2),
                "windows": meta["windowing"]["windows"],
                "timings_s": meta["timings"],
                "model_s": meta["video_model"]["timings"],
                "bytes_written": meta["bytes_written"],
                "peak_rss_bytes": peak_rss_bytes(),
                "peak_rss_after_warmup_bytes": rss_after_warmup,
            }
        )
    )


def cpu_figures(args: argparse.Namespace) -> dict:
    from conftest import make_tiny_checkpoint

    checkpoints = make_tiny_checkpoint(Path(tempfile.mkdtemp(prefix="tiny-ckpt-")))
    results = {}
    for count in args.frames:
        command = [sys.executable, __file__, "--child", str(count), "--checkpoints"]
        command += [str(checkpoints), "--width", str(args.width), "--height", str(args.height)]
        command += ["--gaussians", str(args.gaussians)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"{count} frames failed:\n{done.stderr[-4000:]}")
        results[count] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{count} frames: {results[count]}", flush=True)
    base, longest = args.frames[0], args.frames[-1]
    rss_from, rss_to = args.frames[-2], args.frames[-1]
    growth = results[rss_to]["peak_rss_bytes"] / results[rss_from]["peak_rss_bytes"] - 1
    timings = results[longest]["timings_s"]
    return {
        "size": f"{args.width}x{args.height}",
        "model": "tiny test config on CPU (9x64x96)",
        "gaussians": args.gaussians,
        "s_per_frame": {str(n): r["s_per_frame"] for n, r in results.items()},
        "cpu_s_per_frame": {str(n): r["cpu_s_per_frame"] for n, r in results.items()},
        "windows": {str(n): r["windows"] for n, r in results.items()},
        "first_window_s": {str(n): r["first_window_s"] for n, r in results.items()},
        "peak_rss_mib": {str(n): round(r["peak_rss_bytes"] / 2**20, 1) for n, r in results.items()},
        "ratio": round(results[longest]["s_per_frame"] / results[base]["s_per_frame"], 3),
        "cpu_ratio": round(
            results[longest]["cpu_s_per_frame"] / results[base]["cpu_s_per_frame"], 3
        ),
        "rss_growth": round(growth, 4),
        "write_share_of_model": round(timings["write"] / timings["refine"], 3),
        "split_s": {k: timings[k] for k in ("render", "refine", "write", "total")},
    }


# ---- real-size windows on CUDA -----------------------------------------------------------
def chain_figures(on_cpu: bool) -> dict:
    from videoscene_backend.pipeline.path_video import PathRequest, PathVideo, Refinement
    from videoscene_backend.video.memory import plan_memory
    from videoscene_backend.video.refiner import RefineOptions

    if on_cpu:
        from video_model import _tiny_refiner

        refiner, device, size = _tiny_refiner(), torch.device("cpu"), (96, 54)
        frames = {"one_window": 9, "three_windows": 25}
    else:
        from video_model import _random_real_size_refiner

        device = torch.device("cuda")
        refiner, size = _random_real_size_refiner(plan_memory("auto", device)), (1280, 720)
        frames = {"one_window": 49, "three_windows": 145}
    scene = synthetic_scene(2_000 if on_cpu else 200_000)
    figures = {"device": torch.cuda.get_device_name() if not on_cpu else "cpu", "size": size}
    for name, count in frames.items():
        path = sideways_path(count, *size)
        work = Path(tempfile.mkdtemp(prefix="chain-"))
        ctx = SimpleNamespace(
            work_dir=work,
            progress=lambda *a: None,
            check_cancelled=lambda: None,
            frames_ready=lambda event: None,
        )
        request = PathRequest(path["c2w"], path["K"], *size, (0.0, 0.0, 0.0), 0.01, 1e6)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        report = PathVideo(ctx, scene, request, Refinement(refiner, RefineOptions()), device).run()
        figures[name] = {
            "frames": count,
            "windows": len(report.windows),
            "s_per_window": [round(s, 2) for s in report.window_seconds],
            "model_s": {k: round(v, 2) for k, v in report.refine_timings.items()},
            "peak_gib": None
            if report.peak_memory_bytes is None
            else round(report.peak_memory_bytes / 2**30, 2),
        }
        print(f"{name}: {figures[name]}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", default="49,245,980")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--gaussians", type=int, default=1500)
    parser.add_argument("--chain-on-cpu", action="store_true", help="the CUDA part, tiny, on CPU")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.frames = [int(n) for n in args.frames.split(",")]
    result: dict = {"bench": "long_path"}
    if not args.skip_cpu:
        result["cpu"] = cpu_figures(args)
    if torch.cuda.is_available() or args.chain_on_cpu:
        result["cuda_windows"] = chain_figures(on_cpu=not torch.cuda.is_available())
    else:
        result["cuda_windows"] = "no CUDA GPU here: run this bench on one for those figures"
    cpu = result.get("cpu", {})
    result["ratio"] = cpu.get("ratio")
    result["rss_growth"] = cpu.get("rss_growth")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

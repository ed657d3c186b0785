"""Benchmark: how long a cancel and a SIGTERM take to end a render of the sample scene.

The sample photos (samples/view_{a,b}.jpg) become a scene with the embedded stereo prior (about
440k Gaussians); each backend (a real `serve` process) loads it and renders a 40-frame path at
720x480 with the torch renderer on the CPU. Once the render has spent a few CPU seconds, the
bench either cancels (time to the `cancelled` message) or sends SIGTERM (time to the process's
exit). Both in wall seconds and in the backend's CPU seconds over that span (on a machine
shared with other work, wall time stretches with the load and CPU time much less).

Before: main's behaviour, reproduced in a child that serves with the render call dropping its
check_cancelled (the job noticed a stop only between 4-frame batches), the old 60 s stop wait
and an ordinary interpreter exit. After: `videoscene-backend serve` as it is.

Run with nice: `nice -n 10 python bench/cancel.py`. Prints one final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, FRAMES = 720, 480, 40
CEILING_S = 600.0


# ---- the backends ----------------------------------------------------------------------------
def serve_as_main(address: str, output_dir: str, checkpoints: str) -> None:
    """The service as main ran it: the render checks only between batches, a stop waits up to
    60 s for the job, the process exits normally."""
    import logging

    from videoscene_backend.pipeline import path_video
    from videoscene_backend.service import BackendService, executor

    real_render = path_video.render

    def render_between_batches_only(*args, check_cancelled=None, **kwargs):
        return real_render(*args, **kwargs)

    path_video.render = render_between_batches_only
    executor.STOP_JOIN_S = 60.0
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    service = BackendService(address, output_dir, checkpoints)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: service.stop())
    service.serve_forever()


def start_backend(variant: str, work: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    out, checkpoints = str(work / f"out-{time.monotonic_ns()}"), str(work / "no-checkpoints")
    if variant == "before":
        command = [sys.executable, __file__, "--serve-as-main", address, out, checkpoints]
    else:
        command = [sys.executable, "-m", "videoscene_backend.cli", "serve", "--bind", address]
        command += ["--output-dir", out, "--checkpoints", checkpoints]
    log = open(work / f"{variant}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), address


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(condition, what: str):
    deadline = time.monotonic() + CEILING_S
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


# ---- the scene and the path --------------------------------------------------------------------
def sample_scene() -> tuple[bytes, np.ndarray, int, int]:
    """(PLY bytes, photo A's pixel K, its width, the Gaussian count) of the sample scene."""
    import cv2
    from videoscene_backend.priors.stereo import StereoPrior
    from videoscene_backend.scene.ply import ply_bytes

    photos = [
        cv2.cvtColor(cv2.imread(str(ROOT / "samples" / f"view_{v}.jpg")), cv2.COLOR_BGR2RGB)
        for v in ("a", "b")
    ]
    scene = StereoPrior().build(photos, None, lambda *_: None, lambda: None)
    camera = scene.reference_cameras[0]
    return ply_bytes(scene), camera.K, camera.width, scene.num_gaussians


def path_arrays(K_photo: np.ndarray, photo_width: int) -> dict[str, np.ndarray]:
    """A sideways dolly from photo A's camera, its focal scaled to 720 px wide."""
    focal = K_photo[0, 0] * WIDTH / photo_width
    K = np.array([[focal, 0, WIDTH / 2], [0, focal, HEIGHT / 2], [0, 0, 1.0]])
    c2w = np.tile(np.eye(4), (FRAMES, 1, 1))
    c2w[:, 0, 3] = np.linspace(0.0, 0.3, FRAMES)
    return {"c2w": c2w, "K": np.tile(K, (FRAMES, 1, 1))}


# ---- one measurement -------------------------------------------------------------------------
def measure(variant: str, how: str, ply: bytes, arrays: dict, work: Path, lead_cpu_s: float):
    from videoscene_protocol.client import BackendClient, StateEvent

    process, address = start_backend(variant, work)
    client = BackendClient(address, heartbeat_timeout_s=CEILING_S)
    try:
        wait_for(lambda: _try_connect(client), "the backend")
        loaded = client.submit("load_scene", {}, blobs={"scene.ply": ply})
        scene_id = client.wait(loaded, CEILING_S).meta["scene_id"]
        params = {"scene_id": scene_id, "width": WIDTH, "height": HEIGHT, "refine": False}
        job = client.submit("render_video", params, arrays=arrays)

        def running() -> bool:
            now = client.status(timeout_s=CEILING_S)["running"]
            return now is not None and now["job_id"] == job

        wait_for(running, "the render")
        started = process_cpu_s(process.pid)
        wait_for(lambda: process_cpu_s(process.pid) - started >= lead_cpu_s, "rendering")
        cpu_before, sent = process_cpu_s(process.pid), time.monotonic()
        if how == "cancel":
            client.cancel(job)
            wait_for(
                lambda: any(
                    isinstance(e, StateEvent) and e.job_id == job and e.state == "cancelled"
                    for e in client.poll(timeout_ms=20)
                ),
                "the cancelled message",
            )
            figures = {"wall_s": time.monotonic() - sent}
            figures["cpu_s"] = process_cpu_s(process.pid) - cpu_before
        else:
            process.send_signal(signal.SIGTERM)

            def reaped():
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                return (status, usage) if pid else None

            status, usage = wait_for(reaped, "the exit")
            process.returncode = os.waitstatus_to_exitcode(status)
            figures = {"wall_s": time.monotonic() - sent, "exit_code": process.returncode}
            figures["cpu_s"] = usage.ru_utime + usage.ru_stime - cpu_before
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait(30)
    return {key: round(value, 3) for key, value in figures.items()}


def _try_connect(client) -> bool:
    from videoscene_protocol.errors import VideoSceneError

    try:
        client.connect(timeout_s=2.0)
        return True
    except VideoSceneError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-as-main", nargs=3, metavar=("ADDRESS", "OUT", "CHECKPOINTS"))
    parser.add_argument(
        "--lead-cpu-s", type=float, default=3.0, help="CPU seconds of rendering before the stop"
    )
    args = parser.parse_args()
    if args.serve_as_main:
        serve_as_main(*args.serve_as_main)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-cancel-"))
    ply, K, photo_width, gaussians = sample_scene()
    arrays = path_arrays(K, photo_width)
    results: dict[str, dict] = {}
    for variant in ("before", "after"):
        for how in ("cancel", "sigterm"):
            results[f"{how}_{variant}"] = measure(variant, how, ply, arrays, work, args.lead_cpu_s)
            print(f"{how} {variant}: {results[f'{how}_{variant}']}", flush=True)
    print(
        json.dumps(
            {
                "scene": "samples/ stereo prior",
                "gaussians": gaussians,
                "size": f"{WIDTH}x{HEIGHT}",
                "frames": FRAMES,
                "renderer": "torch (CPU)",
                "lead_cpu_s": args.lead_cpu_s,
                **results,
                "cancel_ratio_wall": round(
                    results["cancel_after"]["wall_s"] / results["cancel_before"]["wall_s"], 4
                ),
                "sigterm_ratio_wall": round(
                    results["sigterm_after"]["wall_s"] / results["sigterm_before"]["wall_s"], 4
                ),
                "cancel_ratio_cpu": round(
                    results["cancel_after"]["cpu_s"] / max(results["cancel_before"]["cpu_s"], 1e-3),
                    4,
                ),
                "sigterm_ratio_cpu": round(
                    results["sigterm_after"]["cpu_s"]
                    / max(results["sigterm_before"]["cpu_s"], 1e-3),
                    4,
                ),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Benchmark: splat rendering at 720x480 on the CPU, the compiled (numba) renderer against the
torch renderer in the same run, on 131,072 and 1,000,000 random Gaussians and on the sample
photos' scene (the stereo prior's, ~440k Gaussians, along the demo's default flythrough).

Per scene: frames per second and CPU seconds per frame of each renderer (CPU seconds show how
much of the machine a render took where other work shares it), their ratio and the largest
pixel difference on a frame both rendered. The compiled renderer's first-call cost apart: a
fresh process with an empty numba cache (compile and cache write), then another with that
cache (what every later process pays). CUDA: gsplat against the torch renderer as before.
One final JSON line. Run it with `nice -n 10` on a shared machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from videoscene_backend.render import render
from videoscene_backend.scene.gaussians import GaussianScene

WIDTH, HEIGHT = 720, 480
K = torch.tensor([[600.0, 0, 360], [0, 600, 240], [0, 0, 1]], dtype=torch.float64)
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
COMPILED_FRAMES = 8
TORCH_FRAMES = 1  # the torch renderer takes seconds to tens of seconds a frame


def make_scene(n: int, device: str = "cpu") -> GaussianScene:
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.5, 1.0, 0.5]) + torch.tensor(
        [0, 0, 4.0]
    )
    scene = GaussianScene(
        means,
        torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        torch.rand(n, 3, generator=g) * 0.02 + 0.004,
        torch.rand(n, generator=g) * 0.9 + 0.05,
        torch.randn(n, 4, 3, generator=g) * 0.3,
    )
    return scene.to(device)


def sideways_path(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    poses = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    poses[:, 0, 3] = torch.linspace(-0.2, 0.2, frames, dtype=torch.float64)
    return poses, K.expand(frames, 3, 3)


def sample_scene() -> tuple[GaussianScene, torch.Tensor, torch.Tensor]:
    """The demo's scene and its 49-frame default flythrough at 720x480."""
    import cv2
    from videoscene_backend.headless import scaled_camera
    from videoscene_backend.priors.stereo import StereoPrior
    from videoscene_backend.scene.flythrough import default_flythrough

    photos = [
        cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)
        for name in ("view_a.jpg", "view_b.jpg")
    ]
    fov = 2 * np.degrees(np.arctan(18 / 28))  # the samples' 28 mm lens on a 36 mm sensor
    scene = StereoPrior().build(photos, fov, lambda *_: None, lambda: None)
    cameras = [
        scaled_camera({"K": c.K, "c2w": c.c2w, "width": c.width, "height": c.height}, WIDTH, HEIGHT)
        for c in scene.reference_cameras
    ]
    c2w, k = default_flythrough(cameras[0], cameras[1], 49)
    return scene, torch.from_numpy(c2w), torch.from_numpy(k)


def timed(scene: GaussianScene, c2w, k, backend: str) -> tuple[float, float, torch.Tensor]:
    """(frames per second, CPU seconds per frame, images)."""
    with torch.no_grad():
        wall, cpu = time.perf_counter(), time.process_time()
        images = render(scene, c2w, k, WIDTH, HEIGHT, backend=backend).images
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(c2w) / wall, cpu / len(c2w), images


def compare(scene: GaussianScene, c2w: torch.Tensor, k: torch.Tensor) -> dict:
    """The compiled renderer on COMPILED_FRAMES frames spread along the path, the torch
    renderer on TORCH_FRAMES of them, the pixel difference on those."""
    picks = np.linspace(0, len(c2w) - 1, COMPILED_FRAMES).round().astype(int)
    fast_fps, fast_cpu, fast = timed(scene, c2w[picks], k[picks], "numba")
    shared = np.linspace(0, COMPILED_FRAMES - 1, TORCH_FRAMES + 2)[1:-1].round().astype(int)
    slow_fps, slow_cpu, slow = timed(scene, c2w[picks[shared]], k[picks[shared]], "torch")
    return {
        "gaussians": scene.num_gaussians,
        "numba_fps": round(fast_fps, 2),
        "numba_cpu_s_per_frame": round(fast_cpu, 3),
        "torch_fps": round(slow_fps, 3),
        "torch_cpu_s_per_frame": round(slow_cpu, 2),
        "ratio": round(fast_fps / slow_fps, 1),
        "cpu_ratio": round(slow_cpu / fast_cpu, 1),
        "max_pixel_diff_255": round(float((fast[shared] - slow).abs().max()) * 255, 2),
    }


FIRST_CALL = """
import time, torch
from videoscene_backend.render import render
from bench_render import make_scene
import videoscene_backend.render.numba_backend
K = torch.tensor([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]])
wall, cpu = time.perf_counter(), time.process_time()
render(make_scene(1000), torch.eye(4), K, 100, 80, backend="numba")
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def first_calls() -> dict:
    """A first small render in a fresh process (imports done), wall and CPU seconds: with an
    empty numba cache (compile and write it), then with that cache (load it)."""
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(Path(__file__).parent))
        code = FIRST_CALL.replace("bench_render", Path(__file__).stem)
        for name in ("compile", "cached"):
            run = subprocess.run(
                [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
            )
            wall, cpu = (float(value) for value in run.stdout.split()[-2:])
            result[f"{name}_first_call_s"] = round(wall, 2)
            result[f"{name}_first_call_cpu_s"] = round(cpu, 2)
    return result


def main() -> None:
    import numba

    result: dict = {
        "bench": "render",
        "size": f"{WIDTH}x{HEIGHT}",
        "device": "cpu",
        "threads": numba.get_num_threads(),
        "niceness": os.nice(0),
        "load_average_1min_at_start": round(os.getloadavg()[0], 1),
    }
    result.update(first_calls())
    warm, _ = sideways_path(1)
    render(make_scene(1000), warm, K[None], WIDTH, HEIGHT, backend="numba")  # load the cache
    scenes = {}
    scenes["random_131072"] = compare(make_scene(131_072), *sideways_path(49))
    scene, c2w, k = sample_scene()
    scenes["sample"] = compare(scene, c2w, k)
    del scene
    scenes["random_1000000"] = compare(make_scene(1_000_000), *sideways_path(49))
    result["scenes"] = scenes
    result["ratio"] = scenes["sample"]["ratio"]
    result["sample_fps"] = scenes["sample"]["numba_fps"]
    if torch.cuda.is_available():
        result["device"] = torch.cuda.get_device_name()
        for n in (131_072, 524_288):
            scene = make_scene(n, "cuda")
            poses, ks = sideways_path(49)
            poses, ks = poses.cuda(), ks.cuda()
            with torch.no_grad():
                render(scene, poses[:1], ks[:1], WIDTH, HEIGHT, backend="gsplat")
                torch.cuda.synchronize()
                start = time.perf_counter()
                fast = render(scene, poses, ks, WIDTH, HEIGHT, backend="gsplat").images
                torch.cuda.synchronize()
                result[f"gsplat_fps_{n}"] = round(49 / (time.perf_counter() - start), 1)
                slow = render(scene, poses[:2], ks[:2], WIDTH, HEIGHT, backend="torch").images
            result[f"gsplat_max_pixel_diff_{n}"] = round(
                float((fast[:2] - slow).abs().max()) * 255, 2
            )
    result["load_average_1min_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Benchmark: VideoScene one-step refinement vs the multi-step base sampler, in the same run.

CUDA: real-size CogVideoX-5B-I2V-shaped models with random weights (timing and memory do not
depend on the values) at 49x480x720, one-step per memory mode (seconds per stage, peak GPU
memory), then the base sampler (50 steps, guidance 6 against negative embeddings, as
CogvideX-Interpolation runs it) in the fastest mode. CPU: the tiny test configuration.
Prints one final JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from videoscene_backend.video.checkpoints import (
    REAL_TRANSFORMER_CONFIG,
    REAL_VAE_CONFIG,
    find_checkpoint,
)
from videoscene_backend.video.memory import plan_memory
from videoscene_backend.video.refiner import RefineOptions, VideoRefiner


def _noop(*_args) -> None:
    return None


def _random_real_size_refiner(plan) -> VideoRefiner:
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXTransformer3DModel,
    )

    with torch.device("meta"):
        transformer = CogVideoXTransformer3DModel(**REAL_TRANSFORMER_CONFIG)
        vae = AutoencoderKLCogVideoX(**REAL_VAE_CONFIG)
    home = "cpu" if plan.offload != "none" else plan.device
    for module in (transformer, vae):
        module.to_empty(device=home)
        with torch.no_grad():
            for param in module.parameters():
                param.normal_(0.0, 0.02)
        module.to(plan.dtype)
    scheduler = CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        snr_shift_scale=1.0,
    )
    prompt, negative = torch.randn(2, 1, 226, 4096)  # guidance runs a real 2-prompt batch
    return VideoRefiner(vae, transformer, scheduler, prompt, plan, negative)


def _tiny_refiner() -> VideoRefiner:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "video"))
    from conftest import make_tiny_checkpoint  # the test suite's tiny model in the real layout

    root = make_tiny_checkpoint(Path(tempfile.mkdtemp()))
    torch.save(torch.randn(1, 16, 32), root / "videoscene" / "negative_prompt_embeds.pt")
    return VideoRefiner.from_checkpoint(
        find_checkpoint(root), plan_memory("fp32", torch.device("cpu"))
    )


def _time_refine(refiner: VideoRefiner, options: RefineOptions) -> dict:
    frames = np.random.default_rng(0).integers(
        0, 256, (refiner.num_frames, refiner.height, refiner.width, 3), dtype=np.uint8
    )
    start = time.perf_counter()
    _, report = refiner.refine(frames, frames[0], frames[-1], options, _noop, _noop)
    total = time.perf_counter() - start
    return {
        "total_s": round(total, 3),
        "stages_s": {k: round(v, 3) for k, v in report.timings.items()},
        "peak_gib": None
        if report.peak_memory_bytes is None
        else round(report.peak_memory_bytes / 2**30, 2),
        "guidance_scale_used": report.sampler.get("guidance_scale_used"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance", type=float, default=6.0)
    parser.add_argument("--modes", default="bf16,balanced,low,lowest")
    args = parser.parse_args()
    multi = RefineOptions(
        mode="multi_step", steps=args.steps, guidance_scale=args.guidance, start_from_noise=True
    )

    if torch.cuda.is_available():
        device = torch.device("cuda")
        one_step = {}
        for mode in args.modes.split(","):
            refiner = _random_real_size_refiner(plan_memory(mode, device))
            _time_refine(refiner, RefineOptions())  # warm-up (kernels, allocator)
            one_step[mode] = _time_refine(refiner, RefineOptions())
            print(f"one-step {mode}: {one_step[mode]}", flush=True)
            del refiner
            torch.cuda.empty_cache()
        fastest = min(one_step, key=lambda m: one_step[m]["total_s"])
        refiner = _random_real_size_refiner(plan_memory(fastest, device))
        multi_step = _time_refine(refiner, multi)
        size = "real (49x480x720, 5B transformer, random weights)"
        reference = one_step[fastest]
    else:
        refiner = _tiny_refiner()
        _time_refine(refiner, RefineOptions())
        one_step = {"fp32": _time_refine(refiner, RefineOptions())}
        multi_step = _time_refine(refiner, multi)
        fastest, size = "fp32", "tiny test config on CPU (9x64x96)"
        reference = one_step["fp32"]
    print(f"multi-step ({args.steps} steps, guidance {args.guidance}): {multi_step}", flush=True)
    print(
        json.dumps(
            {
                "bench": "video_model",
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                "size": size,
                "one_step": one_step,
                "multi_step": {
                    "mode": fastest,
                    "steps": args.steps,
                    "guidance": args.guidance,
                    **multi_step,
                },
                "ratio": round(multi_step["total_s"] / reference["total_s"], 2),
                "denoise_ratio": round(
                    multi_step["stages_s"]["denoise"] / reference["stages_s"]["denoise"], 1
                ),
            }
        )
    )


if __name__ == "__main__":
    main()

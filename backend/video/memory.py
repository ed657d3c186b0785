"""Memory and speed modes for the video model, chosen per job.

The seed's demo needs about 65 GB; users have 12-24 GB cards that Blender may share. Modes:
    auto      pick by free GPU memory (CPU: fp32)
    bf16      everything resident on the GPU in bfloat16 (fastest, most memory)
    fp16      as bf16 in float16 (older GPUs without bf16)
    balanced  bf16 + VAE tiling and slicing
    low       bf16 + whole-model CPU offload between stages + VAE tiling/slicing
    lowest    bf16 + block-level group offload of the transformer (diffusers hooks) + VAE tiling
    fp32      float32, no offload (the CPU default; reference numerics)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import RENDER_VIDEO

MEMORY_MODES = RENDER_VIDEO["memory_mode"].values  # declared (with their docs) in the spec
GIB = 1 << 30

# `auto` on CUDA: the first mode, largest first, whose threshold the free GPU memory reaches.
# Declared here only; `videoscene-backend check --gpu` reads them, reports each mode's measured
# peak beside its threshold and suggests new ones (docs/gpu-check.md). Not yet measured: no GPU
# was available where they were written; replace them with the first GPU run's figures.
AUTO_THRESHOLDS_GIB: dict[str, float] = {"bf16": 70.0, "balanced": 36.0, "low": 20.0, "lowest": 0.0}
# The GPU modes from the least memory to the most (fp16 costs what bf16 does: not listed).
GPU_MODES_SMALLEST_FIRST: tuple[str, ...] = tuple(reversed(AUTO_THRESHOLDS_GIB))


@dataclass(frozen=True)
class MemoryPlan:
    mode: str
    dtype: torch.dtype
    device: torch.device
    vae_tiling: bool = False
    vae_slicing: bool = False
    offload: str = "none"  # "none" | "model" | "group"

    def describe(self) -> dict:
        data = asdict(self)
        data["dtype"] = str(self.dtype).removeprefix("torch.")
        data["device"] = str(self.device)
        return data


def check_mode_fits_device(mode: str, device: torch.device) -> None:
    """BAD_PARAMS for a mode this device cannot run (checked before any work of the job)."""
    RENDER_VIDEO["memory_mode"].check(mode, "render_video")
    if device.type == "cpu" and mode not in ("auto", "fp32"):
        # Half precision convolutions are slow or unsupported on CPU; offload means nothing there.
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"memory_mode {mode!r} needs a GPU; this backend runs on the CPU.",
            "Use memory_mode 'auto' or 'fp32' on a CPU backend.",
        )


def plan_memory(mode: str, device: torch.device) -> MemoryPlan:
    check_mode_fits_device(mode, device)
    if mode == "auto":
        mode = _auto_mode(device)
    return mode_plan(mode, device)


def mode_plan(mode: str, device: torch.device) -> MemoryPlan:
    """The plan of a concrete mode (not `auto`) without the device check: `check --gpu` and
    its CPU tests run the GPU modes' plans where plan_memory would refuse them."""
    half = torch.float16 if mode == "fp16" else torch.bfloat16
    plans = {
        "fp32": MemoryPlan("fp32", torch.float32, device),
        "bf16": MemoryPlan("bf16", half, device),
        "fp16": MemoryPlan("fp16", half, device),
        "balanced": MemoryPlan("balanced", half, device, vae_tiling=True, vae_slicing=True),
        "low": MemoryPlan("low", half, device, True, True, offload="model"),
        "lowest": MemoryPlan("lowest", half, device, True, True, offload="group"),
    }
    return plans[mode]


def _auto_mode(device: torch.device) -> str:
    if device.type != "cuda":
        return "fp32"
    free, _total = torch.cuda.mem_get_info(device)
    return auto_mode_for_free_memory(free)


def auto_mode_for_free_memory(free_bytes: int) -> str:
    """What `auto` picks on a CUDA device with free_bytes free (AUTO_THRESHOLDS_GIB)."""
    for mode, threshold_gib in AUTO_THRESHOLDS_GIB.items():
        if free_bytes >= threshold_gib * GIB:
            return mode
    return GPU_MODES_SMALLEST_FIRST[0]

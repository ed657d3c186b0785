"""The model's frame/resolution contract and the explicit resampling in and out of it.

The real model runs at 49 frames of 480x720 (the learned positional embeddings pin that size).
A path of N frames is sampled to the model's F frames by nearest instant in time, refined, then
mapped back: output frame i shows the model frame nearest to its instant. Other resolutions are
resized (bilinear, antialiased) to the model's size and the result resized back to the request.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def nearest_time_indices(source_count: int, target_count: int) -> np.ndarray:
    """For each of target_count evenly spaced instants, the nearest of source_count instants."""
    if source_count < 1 or target_count < 1:
        raise ValueError("frame counts must be positive")
    if source_count == 1:
        return np.zeros(target_count, dtype=np.int64)
    instants = np.linspace(0.0, 1.0, target_count)
    return np.rint(instants * (source_count - 1)).astype(np.int64)


def resample_time(frames: np.ndarray, target_count: int) -> np.ndarray:
    return frames[nearest_time_indices(len(frames), target_count)]


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, height, width, 3)."""
    if frames.shape[1:3] == (height, width):
        return frames
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    resized = F.interpolate(
        tensor, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()

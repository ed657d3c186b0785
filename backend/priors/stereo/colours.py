"""Colours fitted so that photo A re-renders sharply at its own camera.

At its reference camera each of view 0's Gaussians sits on its pixel's centre with a footprint
of SIGMA_PX plus the renderers' screen-space blur, so a rendered pixel composites its own
Gaussian with its neighbours': a neighbour nearer the camera covers up to 40 % of it. Which
neighbours are nearer follows the depth noise, pixel by pixel, so the blur is no fixed kernel
(sharpening the photo by one made the re-render worse) and taking the photo's colours as they
are cost 2.2-3.4 dB in bench/prior_quality.py's re-renders of photo A.

For fixed geometry the re-render at the reference camera is linear in the colours and local
(the 5x5 neighbourhood, less its corners, whose alpha is below the renderers' threshold), so
its weights W are computed here with the renderers' rules (alpha = min(ALPHA_MAX, opacity *
exp(-r^2 / 2 sigma^2)), alphas below ALPHA_MIN skipped, front to back by depth) without
rendering, and a few Richardson steps c <- c + (photo - W c) solve W c = photo. It is the
colour part of what 3DGS optimisation does, restricted to the one view where the answer is
known. View 1's Gaussians are not part of it: at camera A they lie behind view 0's surface.
"""

from __future__ import annotations

import numpy as np

from ...render.torch_backend import ALPHA_MAX, ALPHA_MIN, SCREEN_BLUR_PX2

ITERATIONS = 3
COLOUR_RANGE = (0.0, 1.5)  # fitted colours may overshoot white a little (thin bright lines)
REACH = 2  # neighbourhood radius in pixels


def neighbour_offsets(sigma_px: float) -> list[tuple[int, int, float]]:
    """(dy, dx, footprint) of the neighbours whose Gaussian can reach a pixel's centre."""
    variance = sigma_px * sigma_px + SCREEN_BLUR_PX2
    offsets = []
    for dy in range(-REACH, REACH + 1):
        for dx in range(-REACH, REACH + 1):
            footprint = float(np.exp(-(dx * dx + dy * dy) / (2.0 * variance)))
            if ALPHA_MAX * footprint >= ALPHA_MIN:
                offsets.append((dy, dx, footprint))
    return offsets


def shifted(image: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """out[y, x] = image[y + dy, x + dx], `fill` beyond the border."""
    out = np.full_like(image, fill)
    height, width = image.shape[:2]
    out[max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)] = image[
        max(0, dy) : height - max(0, -dy), max(0, dx) : width - max(0, -dx)
    ]
    return out


def reference_weights(
    depth: np.ndarray, opacity: np.ndarray, sigma_px: float
) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Each pixel's compositing weight for each neighbour's Gaussian at the reference camera:
    the offsets and (K, H, W) weights."""
    offsets = neighbour_offsets(sigma_px)
    depths = np.stack([shifted(depth, dy, dx, np.inf) for dy, dx, _ in offsets])
    alphas = np.stack(
        [
            np.minimum(ALPHA_MAX, shifted(opacity, dy, dx, 0.0) * footprint)
            for dy, dx, footprint in offsets
        ]
    )
    alphas[alphas < ALPHA_MIN] = 0.0
    order = np.argsort(depths, axis=0)
    sorted_alphas = np.take_along_axis(alphas, order, axis=0)
    transmittance = np.cumprod(1.0 - sorted_alphas, axis=0)
    before = np.concatenate([np.ones_like(transmittance[:1]), transmittance[:-1]])
    weights = np.empty_like(alphas)
    np.put_along_axis(weights, order, sorted_alphas * before, axis=0)
    return [(dy, dx) for dy, dx, _ in offsets], weights


def composite(colours: np.ndarray, offsets: list[tuple[int, int]], weights: np.ndarray):
    """W c: the re-render of (H, W, 3) colours at the reference camera (black background)."""
    out = np.zeros_like(colours)
    for (dy, dx), weight in zip(offsets, weights, strict=True):
        out += weight[..., None] * shifted(colours, dy, dx, 0.0)
    return out


def fit_colours(
    photo: np.ndarray,
    depth: np.ndarray,
    opacity: np.ndarray,
    sigma_px: float,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, 3) colours in COLOUR_RANGE whose re-render at the reference camera is `photo`
    (float in [0, 1]); depth and opacity are the (H, W) Gaussians' camera depth and opacity.
    background: (H, W, 3) what lies behind them at that camera (the coarse backdrop of
    margins.py), which shows through where they are not fully opaque."""
    offsets, weights = reference_weights(
        depth.astype(np.float32), opacity.astype(np.float32), sigma_px
    )
    target = photo.astype(np.float32)
    if background is not None:
        transmittance = np.clip(1.0 - weights.sum(axis=0), 0.0, 1.0)
        target = target - transmittance[..., None] * background.astype(np.float32)
    colours = target.copy()
    for _ in range(ITERATIONS):
        colours += target - composite(colours, offsets, weights)
        np.clip(colours, *COLOUR_RANGE, out=colours)
    return colours

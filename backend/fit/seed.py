"""New Gaussians where a view shows what the scene does not cover.

A pixel whose rendered alpha is below COVERED_ALPHA is back-projected along its ray to the
rendered depth of the nearest covered pixel (as the stereo prior does for photo B's pixels),
a little behind it: disocclusions mostly show what lies behind the surface beside them. One
isotropic Gaussian per such pixel, sized to the pixel's footprint, coloured by the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..scene.gaussians import SH_C0, GaussianScene
from .views import FitView

COVERED_ALPHA = 0.5  # a pixel whose depth counts as the scene's surface
# Seed below this coverage: a fit pixel that is half covered still holds full-size pixels that
# are not (silhouettes, the seam between scene and seeds), which the path then shows black.
SEED_BELOW_ALPHA = 0.9
BEHIND = 1.03  # seeds sit 3 % further along their rays than the surface they take depth from
FOOTPRINT = 0.6  # sigma in pixels of the fit size: neighbouring seeds overlap
SEED_OPACITY = 0.8
# A frame pixel this close to the scene over the background shows nothing behind the scene:
# 8-bit rounding and the renderers' differences (3.5/255 at most, bench/render.py).
EMPTY_TOLERANCE = 4.0 / 255


@dataclass
class Seeds:
    means: np.ndarray  # (M, 3)
    colours: np.ndarray  # (M, 3) in [0, 1]
    sigmas: np.ndarray  # (M,) world units

    @classmethod
    def empty(cls) -> Seeds:
        return cls(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.means)

    def extend(self, other: Seeds) -> Seeds:
        return Seeds(
            np.concatenate([self.means, other.means]),
            np.concatenate([self.colours, other.colours]),
            np.concatenate([self.sigmas, other.sigmas]),
        )

    def limited(self, count: int, generator: np.random.Generator) -> Seeds:
        if len(self) <= count:
            return self
        keep = np.sort(generator.choice(len(self), count, replace=False))
        return Seeds(self.means[keep], self.colours[keep], self.sigmas[keep])

    def as_scene(self, sh_degree: int) -> GaussianScene:
        """Gaussians in the scene type (linear scales, opacities in [0, 1])."""
        count = len(self)
        sh = torch.zeros(count, (sh_degree + 1) ** 2, 3)
        sh[:, 0] = torch.from_numpy((self.colours - 0.5) / SH_C0).float()
        quats = torch.zeros(count, 4)
        quats[:, 0] = 1.0
        return GaussianScene(
            torch.from_numpy(self.means).float(),
            quats,
            torch.from_numpy(self.sigmas).float()[:, None].expand(count, 3).clone(),
            torch.full((count,), SEED_OPACITY),
            sh,
        )


def filled_depth(depth: np.ndarray, covered: np.ndarray, fallback: float) -> np.ndarray:
    """Every pixel's depth, uncovered ones taking that of the nearest covered pixel."""
    if not covered.any():
        return np.full(depth.shape, fallback, dtype=np.float64)
    # OpenCV's distance transform with one label per covered (zero) pixel: each uncovered
    # pixel gets the label of its nearest covered one.
    _, labels = cv2.distanceTransformWithLabels(
        (~covered).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lookup = np.zeros(labels.max() + 1, dtype=np.float64)
    lookup[labels[covered]] = depth[covered]
    return lookup[labels]


def seeds_for_view(
    view: FitView,
    alpha: np.ndarray,
    depth: np.ndarray,
    fallback: float,
    background: tuple[float, float, float] | None = None,
    shown: np.ndarray | None = None,
) -> Seeds:
    """Seeds for the pixels of `view` that alpha (the scene's, seeds so far included) leaves
    uncovered; depth is the scene's rendered depth at the view. With `background`, a pixel
    the frame shows as what is there (`shown`: the premultiplied colour that alpha goes with)
    over the background has nothing behind it to seed: a coarse frame, rendered from the
    scene itself, then seeds nothing at all, not even at the scene's soft edges."""
    covered = (alpha >= COVERED_ALPHA) & (depth > 0)
    uncovered = alpha < SEED_BELOW_ALPHA
    if background is not None:
        there = np.zeros(view.image.shape) if shown is None else shown
        behind = 1.0 - alpha if shown is not None else np.ones(alpha.shape)
        expected = there + behind[..., None] * np.asarray(background)
        empty = np.all(np.abs(view.image.numpy() - expected) <= EMPTY_TOLERANCE, axis=-1)
        uncovered &= ~empty
    if not uncovered.any():
        return Seeds.empty()
    z = filled_depth(depth, covered, fallback)[uncovered] * BEHIND
    rows, cols = np.nonzero(uncovered)
    K = view.K.double().numpy()
    x = (cols + 0.5 - K[0, 2]) / K[0, 0] * z
    y = (rows + 0.5 - K[1, 2]) / K[1, 1] * z
    c2w = view.c2w.double().numpy()
    points = np.stack([x, y, z], axis=1) @ c2w[:3, :3].T + c2w[:3, 3]
    colours = view.image.numpy()[rows, cols].astype(np.float64)
    return Seeds(points, colours, FOOTPRINT * z / K[0, 0])

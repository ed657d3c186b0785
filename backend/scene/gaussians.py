"""The Gaussian scene type shared by priors, renderers, PLY I/O and the protocol.

Frame: reference camera 0's OpenCV camera frame (x right, y down, z forward); units are
whatever the prior produced (pose-free priors have arbitrary scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

# scene.meta keys: the Gaussians [start, end) that only stand in for what no photo saw (the stereo
# prior's band beyond the photos' borders and its coarse backdrop): a preview's guesses, which a
# fit sets aside so that its frames seed what they really show there, then puts back behind.
# Two plain ints, so that they survive the PLY's metadata (scalars only) and a load_scene.
PLACEHOLDERS_META = ("placeholders_start", "placeholders_end")

# The degree-0 spherical-harmonic constant: colour = SH_C0 * sh[:, 0] + 0.5 (3DGS convention).
SH_C0 = 0.28209479177387814


@dataclass
class PinholeCamera:
    """An OpenCV camera: c2w (4x4, camera -> splat frame) and pixel intrinsics K at width x height."""

    c2w: np.ndarray  # (4, 4) float64
    K: np.ndarray  # (3, 3) float64, pixels
    width: int
    height: int


@dataclass
class GaussianScene:
    """N Gaussians. Quaternions are (w, x, y, z), normalized; scales are linear (not log);
    opacities are in [0, 1] (not logits); sh is (N, (degree+1)^2, 3) with the DC term at index 0
    (colour = SH + 0.5, as in 3DGS and gsplat)."""

    means: torch.Tensor  # (N, 3) float32
    quats: torch.Tensor  # (N, 4) float32
    scales: torch.Tensor  # (N, 3) float32
    opacities: torch.Tensor  # (N,) float32
    sh: torch.Tensor  # (N, K, 3) float32
    reference_cameras: list[PinholeCamera] = field(default_factory=list)
    # The prior's input photos (RGB uint8), kept for the video model's "photos" condition source.
    reference_images: list[np.ndarray] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # e.g. {"prior": "stereo", "reason": ...}

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[1] ** 0.5)) - 1

    def to(self, device: torch.device | str) -> GaussianScene:
        return GaussianScene(
            self.means.to(device),
            self.quats.to(device),
            self.scales.to(device),
            self.opacities.to(device),
            self.sh.to(device),
            self.reference_cameras,
            self.reference_images,
            dict(self.meta),
        )

    def take(self, keep: torch.Tensor | np.ndarray) -> GaussianScene:
        """The Gaussians at `keep` (indices or a mask); cameras, photos and meta are shared."""
        index = torch.as_tensor(keep, device=self.means.device)
        return GaussianScene(
            self.means[index],
            self.quats[index],
            self.scales[index],
            self.opacities[index],
            self.sh[index],
            self.reference_cameras,
            self.reference_images,
            dict(self.meta),
        )

    def split_placeholders(self) -> tuple[GaussianScene, GaussianScene | None]:
        """The scene less its placeholder Gaussians (PLACEHOLDERS_META), and those placeholders
        (None when it has none)."""
        span = [self.meta.get(key) for key in PLACEHOLDERS_META]
        if not all(type(v) is int for v in span):  # none, or not this backend's (a PLY's meta)
            return self, None
        start, end = (min(max(0, v), self.num_gaussians) for v in span)
        marked = torch.zeros(self.num_gaussians, dtype=torch.bool)
        marked[start:end] = True
        marked = marked.to(self.means.device)
        rest, placeholders = self.take(~marked), self.take(marked)
        for key in PLACEHOLDERS_META:
            rest.meta.pop(key)
        return rest, placeholders

    def validate(self) -> None:
        """Raise ValueError when shapes disagree or values are not finite."""
        n = self.num_gaussians
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "scales": (n, 3),
            "opacities": (n,),
        }
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"GaussianScene.{name} has shape {actual}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(
                f"GaussianScene.sh has shape {tuple(self.sh.shape)}, expected ({n}, K, 3)"
            )
        if (self.sh_degree + 1) ** 2 != self.sh.shape[1]:
            raise ValueError(f"GaussianScene.sh has {self.sh.shape[1]} coefficients, not a square")
        for name in ("means", "quats", "scales", "opacities", "sh"):
            if not torch.isfinite(getattr(self, name)).all():
                raise ValueError(f"GaussianScene.{name} contains NaN or infinity")

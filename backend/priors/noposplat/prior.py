"""The NoPoSplat prior: two photos -> per-pixel Gaussians of both views in view 0's frame.

Preprocessing as the seed: drop alpha, centre-crop to a square, resize (bilinear) to 512, map
to [-1, 1]; normalized intrinsics fx = fy = 0.8, cx = cy = 0.5 unless the caller gives a field
of view. A given horizontal FOV is that of the original photo; the crop keeps the photo's
shorter side, so the crop's FOV follows from the same focal length over the shorter side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from ...cancel import checked_blocks
from ...devices import default_device
from ...models import ModelCache
from ...scene.gaussians import GaussianScene, PinholeCamera
from .checkpoint import load_network
from .network import REAL_CONFIG, NoPoSplatConfig, RawGaussians
from .pnp import pose_from_points, refine_pose

DEFAULT_FOCAL = 0.8  # the seed's normalized focal length (about 64 degrees)
OPACITY_FOR_POSE = 0.3
RENDERED_SH_DEGREE = 3
CPU_REFINE_SIZE = 128  # the torch renderer's cost grows with pixels; pose needs few


def preprocess(image: np.ndarray, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """RGB uint8 (H, W, 3 or 4) -> (1, 3, size, size) in [-1, 1] and the uint8 square crop."""
    image = image[..., :3]
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = np.ascontiguousarray(image[top : top + side, left : left + side])
    tensor = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0
    tensor = F.interpolate(
        tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    square = (tensor[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return tensor * 2 - 1, square


def normalized_focal(image_shape: tuple[int, ...], fov_deg: float | None) -> float:
    if fov_deg is None:
        return DEFAULT_FOCAL
    height, width = image_shape[:2]
    focal_px = width / (2 * math.tan(math.radians(fov_deg) / 2))
    return focal_px / min(height, width)


def per_photo(fov_deg: float | Sequence[float | None] | None) -> list[float | None]:
    """One field of view for both photos, or one per photo (None: unknown)."""
    return list(fov_deg) if isinstance(fov_deg, Sequence) else [fov_deg, fov_deg]


def photo_fov_deg(image_shape: tuple[int, ...], focal: float) -> float:
    """The photo's horizontal FOV for a normalized focal (the inverse of normalized_focal)."""
    height, width = image_shape[:2]
    return math.degrees(2 * math.atan(width / (2 * focal * min(height, width))))


def normalized_intrinsics(focal: float) -> torch.Tensor:
    """The network's 3x3 intrinsics: focal over the square side, principal point centred."""
    return torch.tensor([[focal, 0, 0.5], [0, focal, 0.5], [0, 0, 1.0]])


def pixel_intrinsics(K_norm: torch.Tensor, size: int) -> np.ndarray:
    return K_norm.double().numpy() * np.array([[size], [size], [1.0]])


def default_refine_steps(device: torch.device) -> int:
    """The seed's 200 steps through gsplat on CUDA; a few through the torch renderer elsewhere."""
    return 200 if device.type == "cuda" else 5


def refine_resolution(device: torch.device, size: int) -> int:
    return size if device.type == "cuda" else min(size, CPU_REFINE_SIZE)


def scene_from_prediction(raw: RawGaussians, sh_degree: int) -> GaussianScene:
    """Batch item 0's per-pixel Gaussians of both views, in the GaussianScene conventions:
    quaternions xyzw -> wxyz, SH (3, K) -> (K, 3) cut to degree 3 (the seed's rasterizer never
    evaluates degree 4, and 3DGS PLY readers expect at most 16 coefficients)."""
    sh = raw.sh[0].float().cpu().permute(0, 1, 2, 4, 3).reshape(-1, (sh_degree + 1) ** 2, 3)
    return GaussianScene(
        means=raw.points[0].float().cpu().reshape(-1, 3),
        quats=raw.quats_xyzw[0].float().cpu().reshape(-1, 4)[:, [3, 0, 1, 2]],
        scales=raw.scales[0].float().cpu().reshape(-1, 3),
        opacities=raw.opacity[0].float().cpu().reshape(-1),
        sh=sh[:, : (min(sh_degree, RENDERED_SH_DEGREE) + 1) ** 2],
    )


def pixel_grid_subsample(scene: GaussianScene, size: int, factor: int) -> GaussianScene:
    """Every factor-th row and column of both views' per-pixel Gaussians, scales grown by the
    factor: the same surfaces at the density of a factor-times smaller render. The CPU renderer
    refines the pose at 128 px; 524,288 sub-pixel Gaussians would cost it about 7 s and 10 GB
    per step for no more signal than 32,768."""
    if factor <= 1:
        return scene

    def grid(tensor: torch.Tensor) -> torch.Tensor:
        per_pixel = tensor.reshape(2, size, size, *tensor.shape[1:])[:, ::factor, ::factor]
        return per_pixel.reshape(-1, *tensor.shape[1:])

    return GaussianScene(
        grid(scene.means),
        grid(scene.quats),
        grid(scene.scales) * factor,
        grid(scene.opacities),
        grid(scene.sh),
    )


class NoPoSplatPrior:
    name = "noposplat"

    def __init__(
        self,
        checkpoint_path: Path,
        models: ModelCache | None = None,
        config: NoPoSplatConfig | None = None,
        pose_refine_steps: int | None = None,
    ) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        # The service passes its cache, so the network stays warm between jobs until released.
        self.models = models if models is not None else ModelCache()
        self.config = config or REAL_CONFIG
        self.device = default_device()
        self.pose_refine_steps = (
            pose_refine_steps
            if pose_refine_steps is not None
            else default_refine_steps(self.device)
        )

    def _network(self) -> torch.nn.Module:
        return self.models.get(
            "prior:noposplat",
            lambda: load_network(self.checkpoint_path, self.config, str(self.device)),
        )

    def build(self, images, fov_deg, progress, check_cancelled) -> GaussianScene:
        size = self.config.image_size
        progress("prior", 0.0, "loading NoPoSplat")
        network = self._network()
        check_cancelled()
        inputs, squares = zip(*(preprocess(image, size) for image in images), strict=True)
        # Each photo's own intrinsics (the network takes one K per view).
        focals = [
            normalized_focal(image.shape, fov)
            for image, fov in zip(images, per_photo(fov_deg), strict=True)
        ]
        K_norms = torch.stack([normalized_intrinsics(focal) for focal in focals])
        progress("prior", 0.2, "predicting Gaussians")
        with torch.no_grad(), checked_blocks(check_cancelled, network):  # per block
            raw = network(torch.cat(inputs)[None].to(self.device), K_norms[None].to(self.device))
        check_cancelled()
        if not all(
            torch.isfinite(t).all()
            for t in (raw.points, raw.opacity, raw.scales, raw.quats_xyzw, raw.sh)
        ):
            raise VideoSceneError(
                ErrorCode.PRIOR_FAILED,
                "NoPoSplat predicted non-finite Gaussians.",
                f"Check that {self.checkpoint_path.name} is the released checkpoint, or use prior 'stereo'.",
            )
        K, K1 = (pixel_intrinsics(K_norm, size) for K_norm in K_norms)

        progress("pose", 0.0, "locating the second camera (PnP)")
        c2w1, inliers = pose_from_points(
            raw.points[0, 1].cpu().numpy(), raw.opacity[0, 1].cpu().numpy() > OPACITY_FOR_POSE, K1
        )
        scene = scene_from_prediction(raw, self.config.sh_degree)
        check_cancelled()
        progress("pose", 0.5, "refining the pose photometrically")
        refine_size = refine_resolution(self.device, size)
        c2w1 = refine_pose(
            pixel_grid_subsample(scene, size, size // refine_size),
            c2w1,
            K1,
            squares[1],
            self.pose_refine_steps,
            refine_size,
            check_cancelled,
            self.device,
        )
        scene.reference_cameras = [
            PinholeCamera(np.eye(4), K, size, size),
            PinholeCamera(c2w1, K1, size, size),
        ]
        scene.reference_images = list(squares)
        scene.meta = {
            "prior": "noposplat",
            "checkpoint": str(self.checkpoint_path),
            "pose_refine_steps": self.pose_refine_steps,
            "pnp_inliers": inliers,
            # The photos' horizontal fields of view the network was given (the crop keeps
            # the shorter side, so a focal over it is one over the width's share of it).
            "fov_deg": photo_fov_deg(images[0].shape, focals[0]),
            "fov_deg_b": photo_fov_deg(images[1].shape, focals[1]),
        }
        progress("pose", 1.0, "done")
        return scene

"""The views a fit learns from: frames (or photos) at the fit size with their cameras."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..scene.gaussians import GaussianScene


@dataclass
class FitView:
    image: torch.Tensor  # (H, W, 3) float32 in [0, 1], at the fit size
    c2w: torch.Tensor  # (4, 4) OpenCV camera -> splat frame
    K: torch.Tensor  # (3, 3) pixels of the fit size
    name: str  # "frame 12", "photo A"
    is_photo: bool = False

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def fit_size(width: int, height: int, downscale: float) -> tuple[int, int]:
    return max(16, round(width / downscale)), max(16, round(height / downscale))


def _view(
    rgb: np.ndarray, c2w: np.ndarray, K: np.ndarray, downscale: float, name: str, photo: bool
):
    height, width = rgb.shape[:2]
    w, h = fit_size(width, height, downscale)
    small = (
        cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != (width, height) else rgb
    )
    scaled = np.array(K, dtype=np.float64)
    # Pixel centres sit at i + 0.5 (gsplat's convention), so scaling the rows is exact.
    scaled[0] *= w / width
    scaled[1] *= h / height
    return FitView(
        torch.from_numpy(np.ascontiguousarray(small)).float() / 255.0,
        torch.from_numpy(np.asarray(c2w, dtype=np.float64)).float(),
        torch.from_numpy(scaled).float(),
        name,
        photo,
    )


def chosen_frames(count: int, max_views: int | None) -> list[int]:
    """Evenly spread frame indices, first and last included: at most max_views of count."""
    if max_views is None or max_views >= count:
        return list(range(count))
    if max_views == 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (max_views - 1)) for i in range(max_views)})


def other_frames(count: int, chosen: Sequence[int]) -> list[int]:
    """The frames a fit does not learn from: they only seed what the chosen ones miss."""
    taken = set(chosen)
    return [i for i in range(count) if i not in taken]


def video_views(
    read_frame: Callable[[int], np.ndarray],
    c2w: np.ndarray,
    K: np.ndarray,
    indices: Sequence[int],
    downscale: float,
) -> list[FitView]:
    """The chosen frames (read one at a time, so a long path is never all in memory)."""
    return [_view(read_frame(i), c2w[i], K[i], downscale, f"frame {i}", False) for i in indices]


def photo_views(scene: GaussianScene, downscale: float) -> list[FitView]:
    """The scene's reference photos at their cameras (none when the scene came from a PLY,
    which keeps the cameras but not the photos)."""
    views = []
    for index, (image, camera) in enumerate(
        zip(scene.reference_images, scene.reference_cameras, strict=False)
    ):
        if image.shape[:2] != (camera.height, camera.width):
            continue  # a photo that is not at its camera's size cannot be compared pixel by pixel
        views.append(_view(image, camera.c2w, camera.K, downscale, f"photo {'AB'[index]}", True))
    return views

"""The views a fit learns from: frames (or photos) at the fit size with their cameras."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

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


# The hole pass (optimise.hole_seeds) looks at every frame at its own size: a fit pixel (4 of the
# frame's a side on the CPU) that is covered at its centre can still hold frame pixels that are
# not (silhouettes, seams between seeds), which the path then shows black.
HOLE_DOWNSCALE = 1.0


# The views a fit learns from stay in memory for the whole fit: each pixel as a float32 RGB
# target, its copy on the device and the prior's colour + alpha layer (12 + 12 + 16 bytes).
# A fit holds at most VIEW_MEMORY_BYTES of them, so a long path of large frames (a render job may
# have MAX_CAMERAS) spreads its views more thinly instead of exhausting the worker's memory.
BYTES_PER_VIEW_PIXEL = 40
VIEW_MEMORY_BYTES = 4 * 2**30


def fit_size(width: int, height: int, downscale: float) -> tuple[int, int]:
    return max(16, round(width / downscale)), max(16, round(height / downscale))


def affordable_views(width: int, height: int, downscale: float, photo_pixels: int = 0) -> int:
    """How many frames of width x height, fitted at 1/downscale, stay within VIEW_MEMORY_BYTES
    beside photos of photo_pixels (at the fit size) in all: at least one."""
    w, h = fit_size(width, height, downscale)
    room = VIEW_MEMORY_BYTES - photo_pixels * BYTES_PER_VIEW_PIXEL
    return max(1, room // (w * h * BYTES_PER_VIEW_PIXEL))


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


class FrameViews(Sequence[FitView]):
    """Frames as views, each read and resized when it is asked for: the whole path at the
    frames' own size is never in memory at once."""

    def __init__(
        self,
        read_frame: Callable[[int], np.ndarray],
        c2w: np.ndarray,
        K: np.ndarray,
        indices: Sequence[int],
        downscale: float,
    ):
        self._read, self._c2w, self._K = read_frame, c2w, K
        self._indices, self._downscale = list(indices), downscale

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, position):  # type: ignore[override]
        if isinstance(position, slice):
            return [self[i] for i in range(len(self))[position]]
        i = self._indices[position]
        return _view(self._read(i), self._c2w[i], self._K[i], self._downscale, f"frame {i}", False)


@dataclass
class FitInputs:
    """What fit_scene is given: the views it learns from (chosen frames, then the photos),
    the path's other frames (they only seed) and the views its hole pass looks at (every frame
    and photo at its own size, read lazily)."""

    views: list[FitView]
    coverage: Sequence[FitView]  # read lazily
    holes: Sequence[FitView]
    indices: list[int]  # the chosen frames
    views_wanted: int  # frames max_views asked for; more than len(indices) when memory capped


def fit_inputs(
    read_frame: Callable[[int], np.ndarray],
    c2w: np.ndarray,
    K: np.ndarray,
    count: int,
    frame_size: tuple[int, int],
    scene: GaussianScene,
    downscale: float,
    max_views: int | None,
    use_photos: bool = True,
) -> FitInputs:
    """The views of a video of `count` frames of frame_size (width, height) for a fit."""
    photos = photo_views(scene, downscale) if use_photos else []
    wanted = count if max_views is None else min(max_views, count)
    photo_pixels = sum(p.width * p.height for p in photos)
    indices = chosen_frames(
        count, min(wanted, affordable_views(*frame_size, downscale, photo_pixels))
    )
    views = video_views(read_frame, c2w, K, indices, downscale) + photos
    coverage = FrameViews(read_frame, c2w, K, other_frames(count, indices), downscale)
    frames = FrameViews(read_frame, c2w, K, range(count), HOLE_DOWNSCALE)
    full_photos = photo_views(scene, HOLE_DOWNSCALE) if use_photos else []
    return FitInputs(views, coverage, Chained(frames, full_photos), indices, wanted)


class Chained(Sequence[FitView]):
    """Two sequences of views one after the other, neither copied (the first may be lazy)."""

    def __init__(self, first: Sequence[FitView], second: Sequence[FitView]):
        self._first, self._second = first, second

    def __len__(self) -> int:
        return len(self._first) + len(self._second)

    def __getitem__(self, position):  # type: ignore[override]
        if isinstance(position, slice):
            return [self[i] for i in range(len(self))[position]]
        position = range(len(self))[position]  # negative indices and the bounds check
        if position < len(self._first):
            return self._first[position]
        return self._second[position - len(self._first)]

    def __iter__(self) -> Iterator[FitView]:
        return chain(self._first, self._second)

"""Small synthetic stereo pairs with known depth for the stereo prior's tests.

Two pinhole cameras with the same orientation, view 1 shifted by `baseline` along +x, looking at
fronto-parallel textured planes: a background (finite depth, or at infinity: zero disparity) and
optional foreground rectangles. Each plane carries its own random texture in world units, so the
two views see the same surface points and the true disparity is focal * baseline / depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480
FOV_DEG = 60.0
FOCAL = WIDTH / 2 / np.tan(np.radians(FOV_DEG) / 2)
TEXEL_PX = 1.5  # one texel covers about this many pixels in the images


@dataclass
class Plane:
    depth: float  # np.inf: at infinity (the same pixels in both views)
    # World x/y bounds (x0, x1, y0, y1) at that depth; None: the whole view.
    bounds: tuple[float, float, float, float] | None = None
    seed: int = 0


@dataclass
class SyntheticPair:
    images: list[np.ndarray]  # two RGB uint8 (HEIGHT, WIDTH, 3)
    depths: list[np.ndarray]  # true z-depth per pixel (np.inf for a plane at infinity)
    baseline: float
    planes: list[Plane] = field(default_factory=list)

    @property
    def focal(self) -> float:
        return FOCAL


def _texture(seed: int, size: int = 1024) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(size // 4, size // 4, 3), dtype=np.uint8)
    coarse = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.addWeighted(coarse, 0.5, fine, 0.5, 0), (3, 3), 0.7)


def _view(planes: list[Plane], camera_x: float) -> tuple[np.ndarray, np.ndarray]:
    us, vs = np.meshgrid(np.arange(WIDTH, dtype=np.float64), np.arange(HEIGHT, dtype=np.float64))
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    depth = np.full((HEIGHT, WIDTH), np.nan)
    # Far to near: nearer planes paint over farther ones.
    for plane in sorted(planes, key=lambda p: -p.depth):
        texture = _texture(plane.seed)
        if np.isinf(plane.depth):
            # Directions only: a plane at infinity looks the same from both cameras.
            tx, ty = (us - WIDTH / 2) / TEXEL_PX, (vs - HEIGHT / 2) / TEXEL_PX
            inside = np.ones_like(us, dtype=bool)
        else:
            xs = (us - WIDTH / 2) * plane.depth / FOCAL + camera_x
            ys = (vs - HEIGHT / 2) * plane.depth / FOCAL
            per_unit = FOCAL / plane.depth / TEXEL_PX
            tx, ty = xs * per_unit, ys * per_unit
            inside = np.ones_like(us, dtype=bool)
            if plane.bounds is not None:
                x0, x1, y0, y1 = plane.bounds
                inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        size = texture.shape[0]
        sampled = cv2.remap(
            texture,
            (tx + size / 2).astype(np.float32),
            (ty + size / 2).astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )
        image[inside] = sampled[inside]
        depth[inside] = plane.depth
    return image, depth


def make_pair(planes: list[Plane], baseline: float) -> SyntheticPair:
    views = [_view(planes, 0.0), _view(planes, baseline)]
    return SyntheticPair(
        images=[v[0] for v in views], depths=[v[1] for v in views], baseline=baseline, planes=planes
    )


def true_disparity(depth: np.ndarray | float, baseline: float) -> np.ndarray | float:
    return FOCAL * baseline / np.asarray(depth, dtype=np.float64)

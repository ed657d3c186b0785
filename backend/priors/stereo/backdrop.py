"""The surface behind photo A's depth edges: what a camera beside A sees when a near object no
longer hides it.

Photo A gives one surface per pixel. Where a near object (a roof, a chair's back) stands before
a far one (sky, a wall), a camera between A and B sees a strip of the far surface that photo A
hides; photo B shows it only where its own depth is right and where it is not the sky (the far
shell keeps one copy), so those strips render black: the specks along roofs against the sky, the
holes beside objects. Here the far side of each depth edge is continued behind the near side,
as a layered-depth image does: its depth and colour are pushed, one pixel a step, over the near
pixels, and each near pixel that the push reaches gets a Gaussian on its own ray at the far
depth. A strip is as wide as the edge's disparity jump (what a camera one baseline away sees of
it) and at most MAX_WIDTH_PX. At photo A's camera these Gaussians lie behind A's own surface, so
photo A is unchanged (hidden_from_a holds for them).
"""

from __future__ import annotations

import numpy as np

from .colours import shifted
from .splats import OPACITY_FILLED, SIGMA_PX, PixelSplats, pixel_grid

# A depth edge is one whose two sides differ by at least this disparity (px, baseline 1), the
# same rule as a disocclusion in splats.py: below it the near side's Gaussians already cover it.
EDGE_DISPARITY_PX = 1.5
MAX_WIDTH_PX = 24  # strips wider than this are left to photo B's Gaussians
NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def push_far_side(
    depth: np.ndarray, colours: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The farthest depth within `steps` pixels (8-connected) of each pixel, that surface's
    colour, and how many steps away it was: (H, W) depth, (H, W, 3) colour, (H, W) int."""
    far_depth, far_colour = depth.copy(), colours.copy()
    distance = np.zeros(depth.shape, np.int32)
    for step in range(1, steps + 1):
        best_depth, best_colour = far_depth.copy(), far_colour.copy()
        for dy, dx in NEIGHBOURS:
            candidate = shifted(far_depth, dy, dx, 0.0)
            better = candidate > best_depth
            best_depth[better] = candidate[better]
            best_colour[better] = shifted(far_colour, dy, dx, 0.0)[better]
        moved = best_depth > far_depth
        distance[moved] = step
        far_depth, far_colour = best_depth, best_colour
    return far_depth, far_colour, distance


def background_layer(depth: np.ndarray, colours: np.ndarray, K: np.ndarray) -> PixelSplats:
    """Gaussians continuing the far side of photo A's depth edges behind the near side.
    depth: (H, W) photo A's z-depth (baseline 1), colours: (H, W, 3) in [0, 1], K: OpenCV
    intrinsics of photo A."""
    height, width = depth.shape
    focal = float(K[0, 0])
    far_depth, far_colour, distance = push_far_side(
        depth.astype(np.float64), colours.astype(np.float32), MAX_WIDTH_PX
    )
    jump_px = focal / depth - focal / far_depth  # disparity between the near and far side
    strip = (jump_px >= EDGE_DISPARITY_PX) & (distance > 0) & (distance <= np.ceil(jump_px))
    pixels = pixel_grid(width, height)[strip.ravel()]
    z = far_depth[strip]
    rays = np.ones((len(pixels), 3))
    rays[:, 0] = (pixels[:, 0] - K[0, 2]) / K[0, 0]
    rays[:, 1] = (pixels[:, 1] - K[1, 2]) / K[1, 1]
    n = len(pixels)
    return PixelSplats(
        means=(rays * z[:, None]).astype(np.float32),
        colours=far_colour[strip].astype(np.float32),
        sigmas=(SIGMA_PX * z / focal).astype(np.float32),
        opacities=np.full(n, OPACITY_FILLED, np.float32),
        confidence=np.zeros(n, np.float32),
        filled=np.ones(n, bool),
        far=np.zeros(n, bool),
    )

"""What lies just beyond a photo's border: the border continued outward, behind everything real.

Two photos see two frames. A camera between them, or one that steps back, also sees a band
around them that neither photo shows; left empty, that band renders black (on the real-photo
bench, 2-12 % of the view between the cameras, and black against a bright sky costs far more
than any guess). Here each photo's frame is widened by a margin whose colours and depths are
the border's, extrapolated inward-out (OpenCV's inpainting on a coarse grid, so the band is a
smooth continuation, not a smear of the last pixel row), one Gaussian per grid cell on the
cell's own ray. The band is a guess and is marked as one (filled, no confidence); it sits
BEHIND_FACTOR further along its rays than the extrapolated depth, so real Gaussians (photo B's
view past A's border) draw in front of it and it shows only where nothing else does. At its
own camera the band lies outside the photo. A coarse copy of the photo lies behind its own
Gaussians as well (holes seen from another camera show it); at the photo's camera a few percent
of it shows through them, and colours.py fits the photo's colours with it there (backdrop_look).
"""

from __future__ import annotations

import cv2
import numpy as np

from .splats import FOOTPRINT_SIGMAS, OPACITY_FILLED, PixelSplats, rotate

# The band's width on each side, as a fraction of the photo's longer side: a camera halfway
# between photos a baseline apart that also steps back a little stays inside it.
MARGIN_FRACTION = 0.2
CELL_PX = 4  # one Gaussian per CELL_PX x CELL_PX cell: a guess needs no full resolution
INPAINT_RADIUS_CELLS = 6
BEHIND_FACTOR = 1.1  # depth factor: behind real content at the border, close enough to join it
# A border's near object (a tree, a chair) continued at its own depth would stand in front of the
# far surfaces a camera beside it sees: the band is a backdrop, never nearer than this quantile
# of the photo's depth.
BACKDROP_QUANTILE = 0.9
# Inside the frame a cell sits at most this factor behind the farthest surface near it: at the
# photo's camera a few percent of it shows through the photo's own Gaussians, and a far cell
# there would pull rendered depth (which the fit uses) away from the surface.
IN_FRAME_REACH = 4.0
CELL_SIGMA = 0.75  # of a cell's width: neighbouring cells blend without a visible grid


def margin_splats(
    photo: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    R: np.ndarray | None = None,
    centre: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> PixelSplats:
    """Gaussians on the band around `photo` (H, W, 3 uint8) whose z-depth map (H, W, along
    this photo's own axis) is `depth`, K the photo's OpenCV intrinsics. R, centre: this camera's
    rotation to view 0's frame and its centre there (view 0 itself when None). valid: the
    photo's pixels that show something (photo B re-imaged into A's camera has a black border).
    The frame itself gets cells too: a coarse copy of the whole photo behind its own Gaussians,
    the backdrop for holes that no full-resolution Gaussian covers from another camera."""
    height, width = depth.shape
    margin = max(1, round(MARGIN_FRACTION * max(width, height) / CELL_PX))
    colour = _cells(photo)
    small_size = colour.shape[1::-1]
    shown = np.ones(small_size[::-1], np.uint8)
    if valid is not None:  # a cell shows the photo only where all of it does
        shown = cv2.resize(valid.astype(np.float32), small_size, interpolation=cv2.INTER_AREA)
        shown = (shown > 0.999).astype(np.uint8)
    # A cell lies behind the farthest surface its footprint reaches (a minimum of inverse depth
    # over about three cells): one averaged across a depth edge would stand in front of the far
    # side and cover it at the photo's own camera.
    inverse = cv2.erode(
        (1.0 / np.maximum(depth, 1e-6)).astype(np.float32),
        np.ones((3 * CELL_PX, 3 * CELL_PX), np.uint8),
    )
    inverse = cv2.resize(inverse, small_size, interpolation=cv2.INTER_AREA)
    pad = [margin] * 4
    colour = cv2.copyMakeBorder(colour, *pad, cv2.BORDER_CONSTANT, value=0)
    inverse = cv2.copyMakeBorder(inverse, *pad, cv2.BORDER_CONSTANT, value=0)
    unknown = np.ones(colour.shape[:2], np.uint8)
    unknown[margin:-margin, margin:-margin] = 1 - shown
    colour = cv2.inpaint(colour, unknown, INPAINT_RADIUS_CELLS, cv2.INPAINT_TELEA)
    # Within the photo's own depth range: inpainting a float image can undershoot towards 0
    # (infinitely far) between far values.
    known = inverse[unknown == 0]
    inverse = cv2.inpaint(inverse, unknown, INPAINT_RADIUS_CELLS, cv2.INPAINT_TELEA)
    if known.size:
        inverse = np.clip(inverse, known.min(), known.max())
    inside_frame = np.zeros(colour.shape[:2], bool)
    inside_frame[margin:-margin, margin:-margin] = True
    # Cell centres in the photo's pixels (OpenCV's convention, pixel centres on integers).
    scale_x, scale_y = width / small_size[0], height / small_size[1]
    rows, cols = np.mgrid[0 : colour.shape[0], 0 : colour.shape[1]]
    u = (cols - margin + 0.5) * scale_x - 0.5
    v = (rows - margin + 0.5) * scale_y - 0.5
    # Band cells whose footprint reaches into the frame would show through the photo's border
    # pixels at its own camera; the in-frame cells' footprints bridge the gap they leave.
    sigma_px = CELL_SIGMA * max(scale_x, scale_y)
    out_x = np.maximum(np.maximum(-0.5 - u, u - (width - 0.5)), 0.0)
    out_y = np.maximum(np.maximum(-0.5 - v, v - (height - 0.5)), 0.0)
    keep = inside_frame | (np.maximum(out_x, out_y) > FOOTPRINT_SIGMAS * sigma_px)
    rows, cols, u, v = rows[keep], cols[keep], u[keep], v[keep]
    backdrop = float(np.quantile(depth, BACKDROP_QUANTILE))
    local = 1.0 / np.maximum(inverse[rows, cols].astype(np.float64), 1e-6)
    z = np.maximum(local, backdrop)
    in_frame = inside_frame[rows, cols]
    z[in_frame] = np.minimum(z[in_frame], IN_FRAME_REACH * local[in_frame])
    z *= BEHIND_FACTOR
    rays = np.ones((len(u), 3))
    rays[:, 0] = (u - K[0, 2]) / K[0, 0]
    rays[:, 1] = (v - K[1, 2]) / K[1, 1]
    points = rays * z[:, None]
    if R is not None:
        points = rotate(R, points) + centre
    n = len(u)
    return PixelSplats(
        means=points.astype(np.float32),
        colours=colour[rows, cols].astype(np.float32) / 255.0,
        # a cell's footprint, as splats.py sizes a pixel's
        sigmas=(sigma_px * z / float(K[0, 0])).astype(np.float32),
        opacities=np.full(n, OPACITY_FILLED, np.float32),
        confidence=np.zeros(n, np.float32),
        filled=np.ones(n, bool),
        far=np.zeros(n, bool),
    )


def backdrop_look(photo: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: about what the in-frame cells of margin_splats(photo, ...)
    draw at the photo's own camera (cell averages blended over CELL_SIGMA), the
    background that colours.py fits the photo's own Gaussians against."""
    height, width = photo.shape[:2]
    look = cv2.resize(_cells(photo), (width, height), interpolation=cv2.INTER_LINEAR)
    return look.astype(np.float32) / 255.0


def _cells(photo: np.ndarray) -> np.ndarray:
    """The photo averaged over CELL_PX x CELL_PX cells: one pixel per cell."""
    height, width = photo.shape[:2]
    size = (max(1, round(width / CELL_PX)), max(1, round(height / CELL_PX)))
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA)

"""Compiled CPU splat rasterizer (numba), with the torch renderer's and gsplat's semantics.

Why numba: it compiles these loops to machine code through LLVM at first use (no C compiler on
the user's machine, wheels for every platform torch supports), runs them on all cores (`prange`
over tiles) and caches the machine code on disk (`cache=True`), so a second process loads it in
a fraction of a second (the cache is __pycache__ beside this file or, where the installed
package is read-only, numba's user-wide cache folder; NUMBA_CACHE_DIR overrides both). Why
hand-written: gsplat ships CUDA kernels only, and the torch renderer, built from batched tensor
ops for its gradients, does many times the arithmetic a per-pixel loop with early termination
needs and spends most of its time moving memory.

Per frame: the projection (gsplat's `_fully_fused_projection` for a pinhole camera, computed in
float64), tile binning (gsplat's `_isect_tiles` rectangles), a per-tile depth sort and
front-to-back compositing with the torch renderer's constants (16 px tiles, alpha = min(0.999,
opacity * exp(-sigma)), alphas below 1/255 skipped, a pixel stops before its transmittance
would fall to 1e-4), then the background. Colours are gsplat's own SH function in torch (its
maths exactly; cheap next to rasterizing, and computed once per call for degree 0). No
gradients: `render(backend="auto")` picks this renderer only where none are needed.

A pixel outside a Gaussian's radius box lies beyond its 3.33-sigma ellipse, where alpha <
exp(-3.33^2 / 2) = 0.0039 < 1/255 for any opacity <= 1, so each Gaussian is evaluated only over
its box's pixels: the same values as gsplat's whole-tile loop, far fewer evaluations.

tests/scene/test_compiled_render.py checks the projection against gsplat's function and the
images, alpha and depth against a dense reference built on gsplat's functions and against the
torch renderer.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numba
import numpy as np
import torch
from gsplat.cuda._torch_impl import _spherical_harmonics
from numba import prange

from ..scene.gaussians import GaussianScene
from .torch_backend import (
    ALPHA_MAX,
    ALPHA_MIN,
    SCREEN_BLUR_PX2,
    SIGMA_CUTOFF,
    TILE,
    TRANSMITTANCE_MIN,
)

# gsplat's projection constants (torch_backend gets them by calling gsplat's function; the
# kernels below restate them, and test_compiled_render.py compares the projection with it).
BOX_SIGMAS = 3.33  # radius of a Gaussian's screen box, in standard deviations
FRUSTUM_MARGIN = 0.3  # the Jacobian's view-ray clamp beyond the image, in units of tan(fov/2)
DET_MIN = 1e-10  # floor of the blurred 2D covariance's determinant
RADIUS_MAX = 1 << 30  # radii are clamped here before becoming integers (a Gaussian at the eye)
CHUNKS_PER_THREAD = 4  # binning splits the Gaussians into this many chunks per thread
TILES_PER_GRAB = 2  # tiles a thread takes at a time: tiles cost very unequal amounts

# The workqueue threading layer (numba's fallback where neither TBB nor OpenMP loads) aborts the
# process when two threads launch parallel kernels at once; renders take turns. The kernels run
# without the GIL (nogil): the service's socket loop, in the same process, keeps answering
# heartbeats, status and cancel while a worker renders a frame.
_kernel_lock = threading.Lock()


@numba.njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def _project(
    means,
    quats,
    scales,
    viewmat,
    K,
    width,
    height,
    eps2d,
    near,
    far,
    tile,
    means2d,
    conics,
    depths,
    radii,
    rects,
):
    """gsplat's `_quat_scale_to_covar_preci` + `_fully_fused_projection` (pinhole) per Gaussian,
    then its `_isect_tiles` rectangle [x0, x1) x [y0, y1) in tiles; radii and rectangle are 0
    for a culled Gaussian."""
    tiles_x = (width + tile - 1) // tile
    tiles_y = (height + tile - 1) // tile
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_x_pos = (width - cx) / fx + FRUSTUM_MARGIN * 0.5 * width / fx
    lim_x_neg = cx / fx + FRUSTUM_MARGIN * 0.5 * width / fx
    lim_y_pos = (height - cy) / fy + FRUSTUM_MARGIN * 0.5 * height / fy
    lim_y_neg = cy / fy + FRUSTUM_MARGIN * 0.5 * height / fy
    V = viewmat
    for i in prange(means.shape[0]):
        mx, my, mz = means[i, 0], means[i, 1], means[i, 2]
        tx = V[0, 0] * mx + V[0, 1] * my + V[0, 2] * mz + V[0, 3]
        ty = V[1, 0] * mx + V[1, 1] * my + V[1, 2] * mz + V[1, 3]
        tz = V[2, 0] * mx + V[2, 1] * my + V[2, 2] * mz + V[2, 3]
        depths[i] = tz
        radii[i, 0] = 0
        radii[i, 1] = 0
        rects[i, 0] = rects[i, 1] = rects[i, 2] = rects[i, 3] = 0
        if not (tz > near and tz < far):
            continue
        # World covariance (R S)(R S)^T from the normalised quaternion (w, x, y, z).
        qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        norm = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
        qw, qx, qy, qz = qw / norm, qx / norm, qy / norm, qz / norm
        r00 = 1 - 2 * (qy * qy + qz * qz)
        r01 = 2 * (qx * qy - qw * qz)
        r02 = 2 * (qx * qz + qw * qy)
        r10 = 2 * (qx * qy + qw * qz)
        r11 = 1 - 2 * (qx * qx + qz * qz)
        r12 = 2 * (qy * qz - qw * qx)
        r20 = 2 * (qx * qz - qw * qy)
        r21 = 2 * (qy * qz + qw * qx)
        r22 = 1 - 2 * (qx * qx + qy * qy)
        sx, sy, sz = scales[i, 0], scales[i, 1], scales[i, 2]
        m00, m01, m02 = r00 * sx, r01 * sy, r02 * sz
        m10, m11, m12 = r10 * sx, r11 * sy, r12 * sz
        m20, m21, m22 = r20 * sx, r21 * sy, r22 * sz
        # Camera-frame M = V_R (R S); the camera covariance is M M^T.
        a00 = V[0, 0] * m00 + V[0, 1] * m10 + V[0, 2] * m20
        a01 = V[0, 0] * m01 + V[0, 1] * m11 + V[0, 2] * m21
        a02 = V[0, 0] * m02 + V[0, 1] * m12 + V[0, 2] * m22
        a10 = V[1, 0] * m00 + V[1, 1] * m10 + V[1, 2] * m20
        a11 = V[1, 0] * m01 + V[1, 1] * m11 + V[1, 2] * m21
        a12 = V[1, 0] * m02 + V[1, 1] * m12 + V[1, 2] * m22
        a20 = V[2, 0] * m00 + V[2, 1] * m10 + V[2, 2] * m20
        a21 = V[2, 0] * m01 + V[2, 1] * m11 + V[2, 2] * m21
        a22 = V[2, 0] * m02 + V[2, 1] * m12 + V[2, 2] * m22
        # Perspective Jacobian with the view ray clamped to the widened frustum (gsplat's).
        cx_ = tz * min(max(tx / tz, -lim_x_neg), lim_x_pos)
        cy_ = tz * min(max(ty / tz, -lim_y_neg), lim_y_pos)
        j00, j02 = fx / tz, -fx * cx_ / (tz * tz)
        j11, j12 = fy / tz, -fy * cy_ / (tz * tz)
        # Rows of J M: the 2D covariance is (J M)(J M)^T.
        b00, b01, b02 = j00 * a00 + j02 * a20, j00 * a01 + j02 * a21, j00 * a02 + j02 * a22
        b10, b11, b12 = j11 * a10 + j12 * a20, j11 * a11 + j12 * a21, j11 * a12 + j12 * a22
        c00 = b00 * b00 + b01 * b01 + b02 * b02 + eps2d
        c01 = b00 * b10 + b01 * b11 + b02 * b12
        c11 = b10 * b10 + b11 * b11 + b12 * b12 + eps2d
        det = max(c00 * c11 - c01 * c01, DET_MIN)
        u = (K[0, 0] * tx + K[0, 1] * ty + K[0, 2] * tz) / tz
        v = (K[1, 0] * tx + K[1, 1] * ty + K[1, 2] * tz) / tz
        means2d[i, 0] = u
        means2d[i, 1] = v
        conics[i, 0] = c11 / det
        conics[i, 1] = -c01 / det
        conics[i, 2] = c00 / det
        rx = math.ceil(min(BOX_SIGMAS * math.sqrt(c00), RADIUS_MAX))
        ry = math.ceil(min(BOX_SIGMAS * math.sqrt(c11), RADIUS_MAX))
        if u + rx <= 0 or u - rx >= width or v + ry <= 0 or v - ry >= height:
            continue
        radii[i, 0] = rx
        radii[i, 1] = ry
        rects[i, 0] = min(max(math.floor(u / tile - rx / tile), 0), tiles_x)
        rects[i, 1] = min(max(math.ceil(u / tile + rx / tile), 0), tiles_x)
        rects[i, 2] = min(max(math.floor(v / tile - ry / tile), 0), tiles_y)
        rects[i, 3] = min(max(math.ceil(v / tile + ry / tile), 0), tiles_y)


@numba.njit(parallel=True, nogil=True, cache=True)
def _bin(rects, tiles_x, tiles_y, chunks):
    """Tile lists: members[starts[t]:starts[t + 1]] are the Gaussians whose rectangle covers tile
    t, in index order. Each of `chunks` chunks of Gaussians counts and writes its own slots, so
    both passes run in parallel."""
    n = rects.shape[0]
    tiles = tiles_x * tiles_y
    per_chunk = (n + chunks - 1) // chunks
    counts = np.zeros((chunks, tiles), np.int64)
    for chunk in prange(chunks):
        for i in range(chunk * per_chunk, min(n, (chunk + 1) * per_chunk)):
            for ty in range(rects[i, 2], rects[i, 3]):
                for tx in range(rects[i, 0], rects[i, 1]):
                    counts[chunk, ty * tiles_x + tx] += 1
    starts = np.empty(tiles + 1, np.int64)
    total = 0
    for t in range(tiles):  # tile-major, chunk-minor: each tile's slots are contiguous
        starts[t] = total
        for chunk in range(chunks):
            count = counts[chunk, t]
            counts[chunk, t] = total  # now the chunk's write cursor in tile t
            total += count
    starts[tiles] = total
    members = np.empty(total, np.int32)
    for chunk in prange(chunks):
        for i in range(chunk * per_chunk, min(n, (chunk + 1) * per_chunk)):
            for ty in range(rects[i, 2], rects[i, 3]):
                for tx in range(rects[i, 0], rects[i, 1]):
                    t = ty * tiles_x + tx
                    members[counts[chunk, t]] = i
                    counts[chunk, t] += 1
    return starts, members


@numba.njit(parallel=True, nogil=True, cache=True)
def _rasterize(
    starts,
    members,
    means2d,
    conics,
    radii,
    depths,
    opacities,
    colours,
    background,
    tiles_x,
    tile,
    alpha_min,
    alpha_max,
    transmittance_min,
    sigma_cutoff,
    image,
    alpha,
    depth,
):
    """Each tile's Gaussians sorted by depth and composited front to back over their box's
    pixels in the tile; a pixel is done when its transmittance would fall to
    `transmittance_min` (that Gaussian left out, as in gsplat), a tile when all its pixels are."""
    height, width = image.shape[0], image.shape[1]
    for t in prange(starts.shape[0] - 1):
        x_first, y_first = (t % tiles_x) * tile, (t // tiles_x) * tile
        x_end, y_end = min(x_first + tile, width), min(y_first + tile, height)
        tile_width = x_end - x_first
        pixels = tile_width * (y_end - y_first)
        transmittance = np.ones(pixels)
        accumulated = np.zeros((pixels, 4))  # r, g, b, depth
        done = np.zeros(pixels, np.bool_)
        remaining = pixels
        ids = members[starts[t] : starts[t + 1]]
        # Stable: equal depths (common in a prior's depth map) keep index order, as in gsplat,
        # whose radix sort of (tile, depth) keys keeps the order it generated them in.
        order = np.argsort(depths[ids], kind="mergesort")
        for k in range(ids.shape[0]):
            g = ids[order[k]]
            gx, gy = means2d[g, 0], means2d[g, 1]
            ca, cb, cc = conics[g, 0], conics[g, 1], conics[g, 2]
            opacity = opacities[g]
            if opacity < alpha_min:
                continue
            # alpha >= alpha_min exactly where sigma <= log(opacity / alpha_min): skipping beyond
            # that before exp() keeps every value and saves the exp of a skipped pixel.
            sigma_limit = min(sigma_cutoff, math.log(opacity / alpha_min))
            red, green, blue, z = colours[g, 0], colours[g, 1], colours[g, 2], depths[g]
            x0 = max(x_first, int(math.floor(gx - radii[g, 0])))
            x1 = min(x_end, int(math.floor(gx + radii[g, 0])) + 1)
            y0 = max(y_first, int(math.floor(gy - radii[g, 1])))
            y1 = min(y_end, int(math.floor(gy + radii[g, 1])) + 1)
            for py in range(y0, y1):
                dy = py + 0.5 - gy
                row = (py - y_first) * tile_width - x_first
                for px in range(x0, x1):
                    j = row + px
                    if done[j]:
                        continue
                    dx = px + 0.5 - gx
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0 or sigma > sigma_limit:
                        continue
                    a = min(alpha_max, opacity * math.exp(-sigma))
                    if a < alpha_min:
                        continue
                    after = transmittance[j] * (1.0 - a)
                    if after <= transmittance_min:
                        done[j] = True
                        remaining -= 1
                        continue
                    weight = a * transmittance[j]
                    accumulated[j, 0] += weight * red
                    accumulated[j, 1] += weight * green
                    accumulated[j, 2] += weight * blue
                    accumulated[j, 3] += weight * z
                    transmittance[j] = after
            if remaining == 0:
                break
        for py in range(y_first, y_end):
            for px in range(x_first, x_end):
                j = (py - y_first) * tile_width + px - x_first
                covered = 1.0 - transmittance[j]
                for ch in range(3):
                    image[py, px, ch] = accumulated[j, ch] + transmittance[j] * background[ch]
                alpha[py, px] = covered
                depth[py, px] = accumulated[j, 3] / covered if covered > 0.0 else 0.0


def _colours(
    scene: GaussianScene, sh_degree: int, ids: np.ndarray | None, centre: np.ndarray | None
) -> torch.Tensor:
    """gsplat's SH colours (+0.5, clamped at 0) of Gaussians `ids` (all when None) seen from
    `centre` (any point when the degree is 0: the DC term has no direction)."""
    bases = (sh_degree + 1) ** 2
    if ids is None:
        means, coeffs = scene.means, scene.sh[:, :bases]
    else:
        index = torch.from_numpy(ids)
        means, coeffs = scene.means[index], scene.sh[index, :bases]
    directions = means - torch.as_tensor(centre if centre is not None else np.zeros(3)).to(means)
    return torch.clamp_min(_spherical_harmonics(sh_degree, directions, coeffs) + 0.5, 0.0)


def _as_f32(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)


@torch.no_grad()
def render_numba(
    scene: GaussianScene,
    c2w: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor,
    near: float,
    far: float,
    sh_degree: int,
    want_depth: bool,
    want_alpha: bool,
    *,
    check_cancelled: Callable[[], None] | None = None,
):
    from . import RenderOutput

    frames = len(c2w)
    means, quats, scales = _as_f32(scene.means), _as_f32(scene.quats), _as_f32(scene.scales)
    opacities = _as_f32(scene.opacities)
    c2w_np = c2w.detach().cpu().double().numpy()
    K_np = np.ascontiguousarray(K.detach().cpu().double().numpy())
    bg = background.detach().cpu().double().numpy()
    n = len(means)
    tiles_x, tiles_y = (width + TILE - 1) // TILE, (height + TILE - 1) // TILE
    chunks = max(1, numba.get_num_threads() * CHUNKS_PER_THREAD)
    means2d, conics = np.empty((n, 2), np.float32), np.empty((n, 3), np.float32)
    depths, radii = np.empty(n, np.float32), np.empty((n, 2), np.int32)
    rects = np.empty((n, 4), np.int32)
    fixed_colours = _as_f32(_colours(scene, 0, None, None)) if sh_degree == 0 else None
    colours = fixed_colours if fixed_colours is not None else np.zeros((n, 3), np.float32)
    images = np.empty((frames, height, width, 3), np.float32)
    alphas = np.empty((frames, height, width), np.float32)
    depth_maps = np.empty((frames, height, width), np.float32)
    for frame in range(frames):
        if check_cancelled is not None:
            check_cancelled()
        viewmat = np.linalg.inv(c2w_np[frame])
        with _kernel_lock:
            _project(
                means,
                quats,
                scales,
                viewmat,
                K_np[frame],
                int(width),
                int(height),
                float(SCREEN_BLUR_PX2),
                float(near),
                float(far),
                TILE,
                means2d,
                conics,
                depths,
                radii,
                rects,
            )
        if fixed_colours is None:
            visible = np.flatnonzero(radii[:, 0] > 0)
            colours[visible] = _as_f32(_colours(scene, sh_degree, visible, c2w_np[frame, :3, 3]))
        with _kernel_lock:
            starts, members = _bin(rects, tiles_x, tiles_y, chunks)
            with numba.parallel_chunksize(TILES_PER_GRAB):
                _rasterize(
                    starts,
                    members,
                    means2d,
                    conics,
                    radii,
                    depths,
                    opacities,
                    colours,
                    bg,
                    tiles_x,
                    TILE,
                    ALPHA_MIN,
                    ALPHA_MAX,
                    TRANSMITTANCE_MIN,
                    SIGMA_CUTOFF,
                    images[frame],
                    alphas[frame],
                    depth_maps[frame],
                )
    dtype = scene.means.dtype
    return RenderOutput(
        images=torch.from_numpy(images).to(dtype),
        depth=torch.from_numpy(depth_maps).to(dtype) if want_depth else None,
        alpha=torch.from_numpy(alphas).to(dtype) if want_alpha else None,
    )

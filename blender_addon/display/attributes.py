"""Per-point display attributes of a splat, computed with numpy from the splat arrays.

The Gaussian material (display/material.py) reads, per point, in the splat's own frame:
- "gs_color": the SH DC colour in linear light (Blender's emission colour), alpha = opacity;
- "gs_srgb": the same colour's sRGB values, as 3DGS blends them (display/__init__.py: colour);
- "gs_axis_x", "gs_axis_y", "gs_axis_z": the Gaussian's principal axes (the columns of its
  rotation matrix; unit vectors);
- "gs_variance": the variances (sigma^2) along those axes.
That is eight attributes with the blur and the centre (display/modifier.py) of Blender's ~15 per
material (GPU_MAX_ATTR): the higher SH bands do not fit, so the display shows the
view-independent DC colour. The built-in "radius" covers RADIUS_SIGMAS of the largest axis:
in the dithered order Cycles draws a sphere of that radius, and EEVEE's
camera-facing point shape holds the whole circle of it (measured: widening the radius by sqrt 2,
as a diamond with its corners at the radius would need, changes a lone Gaussian by 0.2 dB and a
3000-Gaussian render by 0.2 dB, while Cycles loses 1.3 dB to the larger spheres' entry order).
"""

from __future__ import annotations

import math

import numpy as np

# Where the backend stops drawing a Gaussian: alphas under 1/255 are skipped, so for opacity <= 1
# nothing lies beyond sqrt(2 ln 255) = 3.33 sigma (backend/render/torch_backend.py, gsplat).
RADIUS_SIGMAS = math.sqrt(2.0 * math.log(255.0))
SH_C0 = 0.28209479177387814  # the degree-0 spherical-harmonic constant (colour = C0 * dc + 0.5)
AXIS_ATTRIBUTES = ("gs_axis_x", "gs_axis_y", "gs_axis_z")
COLOR_ATTRIBUTE = "gs_color"
SRGB_ATTRIBUTE = "gs_srgb"
VARIANCE_ATTRIBUTE = "gs_variance"


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB decoding curve (IEC 61966-2-1), the inverse of Blender's Standard view."""
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def rotation_axes(quats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The columns of the rotation matrices of (N, 4) wxyz quaternions (normalised here, as
    gsplat does): each Gaussian's x, y and z axes as (N, 3) float32. Computed in float32 column
    by column (half a million Gaussians in tens of milliseconds)."""
    q = np.asarray(quats, dtype=np.float32)
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    axes = np.empty((3, len(q), 3), dtype=np.float32)
    axes[0, :, 0], axes[0, :, 1], axes[0, :, 2] = (
        1 - 2 * (y * y + z * z),
        2 * (x * y + w * z),
        2 * (x * z - w * y),
    )
    axes[1, :, 0], axes[1, :, 1], axes[1, :, 2] = (
        2 * (x * y - w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z + w * x),
    )
    axes[2, :, 0], axes[2, :, 1], axes[2, :, 2] = (
        2 * (x * z + w * y),
        2 * (y * z - w * x),
        1 - 2 * (x * x + y * y),
    )
    return axes[0], axes[1], axes[2]


def point_radius(scales: np.ndarray) -> np.ndarray:
    """The point radius that holds a Gaussian's drawn extent in EEVEE and Cycles."""
    return (RADIUS_SIGMAS * np.max(scales, axis=1)).astype(np.float32)


def display_attributes(
    quats: np.ndarray, scales: np.ndarray, opacities: np.ndarray, colors: np.ndarray
) -> dict[str, np.ndarray]:
    """Attribute name -> float32 values of what the Gaussian material reads."""
    srgb = np.clip(np.asarray(colors, dtype=np.float32), 0.0, 1.0)
    rgba = np.empty((len(srgb), 4), dtype=np.float32)
    rgba[:, :3] = srgb_to_linear(srgb)
    rgba[:, 3] = opacities
    attributes = {COLOR_ATTRIBUTE: rgba, SRGB_ATTRIBUTE: srgb}
    for name, axis in zip(AXIS_ATTRIBUTES, rotation_axes(quats), strict=True):
        attributes[name] = axis
    attributes[VARIANCE_ATTRIBUTE] = np.square(np.asarray(scales, dtype=np.float32))
    return attributes

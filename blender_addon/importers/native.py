"""Splat arrays <-> Blender's own Gaussian splat (5.3+), with exactly the attributes Blender's
3DGS PLY import (File > Import > PLY) writes, so a scene.ply looks the same whichever importer
brings it in:
- "position": the means;
- "radiance:base" (FLOAT4): the raw DC coefficients f_dc_0..2 (not a colour) and the
  activated opacity sigmoid(opacity);
- "scale": exp(scale_0..2); "rotation" (QUATERNION, w x y z): the normalised rot_0..3;
- "radiance:sh_k" (k = 0..): the k-th higher-band coefficient of red, green and blue
  (f_rest_k, f_rest_{k+n}, f_rest_{k+2n} with n coefficients a colour).
Blender keeps activated values, so an export gives the same Gaussians back, not the same bits:
an opacity within OPACITY_EPS of 0 or 1 comes back as that bound's logit.
"""

from __future__ import annotations

from collections.abc import Mapping

import bpy
import numpy as np

from ..display.native import BASE, NATIVE_TYPE
from .ply import MIN_SCALE, OPACITY_EPS

SH_PREFIX = "radiance:sh_"
# Blender's attribute name -> (data type, foreach key, width)
NATIVE_ATTRIBUTES = {
    BASE: ("FLOAT4", "vector", 4),
    "scale": ("FLOAT_VECTOR", "vector", 3),
    "rotation": ("QUATERNION", "value", 4),
}
SH_ATTRIBUTE = ("FLOAT_VECTOR", "vector", 3)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def native_attributes(gs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Blender's attributes from 3DGS parameters (f_dc, opacity_logit, log_scale, rot and
    optionally f_rest), as its PLY import maps them."""
    count = len(gs["f_dc"])
    base = np.empty((count, 4), dtype=np.float32)
    base[:, :3] = gs["f_dc"]
    base[:, 3] = _sigmoid(np.asarray(gs["opacity_logit"], dtype=np.float64))
    rot = np.asarray(gs["rot"], dtype=np.float64)
    norms = np.linalg.norm(rot, axis=1, keepdims=True)
    attributes = {
        BASE: base,
        "scale": np.exp(np.asarray(gs["log_scale"], dtype=np.float64)),
        "rotation": np.where(norms > 0, rot / np.maximum(norms, 1e-30), (1.0, 0.0, 0.0, 0.0)),
    }
    rest = gs.get("f_rest")
    if rest is not None and rest.shape[1]:
        per_colour = rest.shape[1] // 3
        bands = np.asarray(rest, dtype=np.float32)[:, : 3 * per_colour]
        bands = bands.reshape(count, 3, per_colour)
        for k in range(per_colour):
            attributes[f"{SH_PREFIX}{k}"] = bands[:, :, k]
    return attributes


def gs_from_native(attributes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The 3DGS parameters back from Blender's attributes (the inverse of native_attributes)."""
    base = np.asarray(attributes[BASE], dtype=np.float64)
    opacity = np.clip(base[:, 3], OPACITY_EPS, 1.0 - OPACITY_EPS)
    gs = {
        "f_dc": base[:, :3].astype(np.float32),
        "opacity_logit": np.log(opacity / (1.0 - opacity)).astype(np.float32),
        "log_scale": np.log(np.maximum(attributes["scale"], MIN_SCALE)).astype(np.float32),
        "rot": np.asarray(attributes["rotation"], dtype=np.float32),
    }
    bands = sorted(
        int(name[len(SH_PREFIX) :])
        for name in attributes
        if name.startswith(SH_PREFIX) and name[len(SH_PREFIX) :].isdigit()
    )
    if bands:
        # f_rest is colour-major: all of red's coefficients, then green's, then blue's.
        stacked = np.stack([attributes[f"{SH_PREFIX}{k}"] for k in bands], axis=2)
        gs["f_rest"] = stacked.reshape(len(base), -1).astype(np.float32)
    return gs


def native_point_cloud(name: str, means: np.ndarray, gs: Mapping[str, np.ndarray]):
    """A GAUSSIAN_SPLAT point cloud holding the splat, filled through foreach_set."""
    cloud = bpy.data.pointclouds.new(name)
    cloud.resize(len(means))
    # Only what Blender's own import makes (a new point cloud may bring a default radius).
    for extra in [a.name for a in cloud.attributes if a.name != "position"]:
        cloud.attributes.remove(cloud.attributes[extra])
    cloud.attributes["position"].data.foreach_set("vector", flat_f32(means))
    for attribute, values in native_attributes(gs).items():
        kind, key, _width = NATIVE_ATTRIBUTES.get(attribute, SH_ATTRIBUTE)
        cloud.attributes.new(attribute, kind, "POINT").data.foreach_set(key, flat_f32(values))
    cloud.type = NATIVE_TYPE
    cloud.update_tag()
    return cloud


def read_native(attributes, count: int) -> dict[str, np.ndarray]:
    """Blender's splat attributes of a point cloud, as arrays."""
    found = {}
    for attribute in attributes.keys():
        if attribute in NATIVE_ATTRIBUTES or attribute.startswith(SH_PREFIX):
            _kind, key, width = NATIVE_ATTRIBUTES.get(attribute, SH_ATTRIBUTE)
            values = np.empty(count * width, dtype=np.float32)
            attributes[attribute].data.foreach_get(key, values)
            found[attribute] = values.reshape(count, width)
    return found


def flat_f32(values: np.ndarray) -> np.ndarray:
    """Values as the flat float32 buffer foreach_set takes."""
    return np.ascontiguousarray(values, dtype=np.float32).ravel()

"""Gaussian splat arrays -> a point cloud under the "VideoScene Scene" empty, and back.

Everything goes through numpy + foreach_set/foreach_get (no per-point Python loops): half a
million Gaussians import in well under a second. Every point carries, as POINT attributes:
- the linear values: "color" (RGBA: the SH DC colour clipped to 0..1, alpha = opacity),
  "opacity", "scale", "rotation" (unit quaternion wxyz) and "radius" (the point size);
- what the Gaussian display reads (display/attributes.py): "gs_color", "gs_axis_x/y/z",
  "gs_variance";
- the 3DGS parameters, exactly as a PLY file had them (else derived from the linear values):
  "f_dc", "f_rest_0".. (when present), "opacity_logit", "log_scale", "rot".
The point cloud is made by compat.make_point_cloud from a mesh, and display.show_gaussians gives
it the Gaussian material and the display modifier.

Where Blender draws Gaussian splats itself (5.3+, compat.native_gaussian_splats), the splat is
instead a GAUSSIAN_SPLAT point cloud with exactly the attributes Blender's own PLY import writes
(display/native.py), and Blender draws it.
"""

from __future__ import annotations

from collections.abc import Mapping

import bpy
import numpy as np

from .. import compat, display
from .._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ..display.attributes import display_attributes, point_radius
from ..display.native import show_native
from .native import (
    NATIVE_ATTRIBUTES,
    flat_f32,
    gs_from_native,
    native_point_cloud,
    read_native,
)
from .ply import F_REST, gs_parameters
from .rollback import removed_on_error

SPLAT_FIELDS = {"means": 3, "quats": 4, "scales": 3, "opacities": 0, "colors": 3}
# Optional: the 3DGS parameters as read from a file (f_rest has any number of columns).
GS_FIELDS = {"f_dc": 3, "opacity_logit": 0, "log_scale": 3, "rot": 4}
# Attribute name -> (data type, foreach key, width) of what a splat point carries.
DISPLAY_ATTRIBUTES = {
    "color": ("FLOAT_COLOR", "color", 4),
    "opacity": ("FLOAT", "value", 1),
    "scale": ("FLOAT_VECTOR", "vector", 3),
    "rotation": ("QUATERNION", "value", 4),
    "radius": ("FLOAT", "value", 1),
}
GS_ATTRIBUTES = {
    "f_dc": ("FLOAT_VECTOR", "vector", 3),
    "opacity_logit": ("FLOAT", "value", 1),
    "log_scale": ("FLOAT_VECTOR", "vector", 3),
    "rot": ("QUATERNION", "value", 4),
}
NATIVE_SPLAT_ATTRIBUTES = set(NATIVE_ATTRIBUTES)
NOT_A_SPLAT_HINT = "Select a splat made by Build Scene or File > Import > Gaussian Splat (.ply)."


def validate_splat_arrays(arrays: Mapping[str, np.ndarray]) -> int:
    """Check names, shapes and finiteness; return the number of Gaussians."""
    missing = [name for name in SPLAT_FIELDS if name not in arrays]
    if missing:
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            f"The scene result lacks the arrays {missing}.",
            "The backend and add-on versions may differ: update both.",
        )
    count = int(np.shape(arrays["means"])[0]) if np.ndim(arrays["means"]) else -1
    expected_shapes = {
        name: (count, width) if width else (count,)
        for name, width in (*SPLAT_FIELDS.items(), *GS_FIELDS.items())
        if name in arrays
    }
    if "f_rest" in arrays:
        expected_shapes["f_rest"] = (count, np.shape(arrays["f_rest"])[-1])
    for name, expected in expected_shapes.items():
        shape = np.shape(arrays[name])
        if shape != expected:
            raise VideoSceneError(
                ErrorCode.SHAPE_MISMATCH,
                f"Splat array {name!r} has shape {shape}, expected {expected}.",
                "The backend and add-on versions may differ: update both.",
            )
        bad = np.count_nonzero(~np.isfinite(arrays[name]))
        if bad:
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"Splat array {name!r} has {bad} non-finite values.",
                "The splat is corrupt: make or export it again.",
            )
    if count <= 0:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS, "The splat has no Gaussians.", "Build or import another one."
        )
    return count


def _add_attribute(mesh: bpy.types.Mesh, name: str, spec: tuple[str, str, int], values):
    kind, key, _width = spec
    attribute = mesh.attributes.new(name, kind, "POINT")
    attribute.data.foreach_set(key, flat_f32(values))


def splat_mesh(name: str, arrays: Mapping[str, np.ndarray]) -> bpy.types.Mesh:
    """A vertex-only mesh with one vertex per Gaussian and its attributes."""
    count = validate_splat_arrays(arrays)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(count)
    mesh.vertices.foreach_set("co", flat_f32(arrays["means"]))
    opacities = np.asarray(arrays["opacities"], dtype=np.float32)
    scales = np.asarray(arrays["scales"], dtype=np.float32)
    rgba = np.empty((count, 4), dtype=np.float32)
    rgba[:, :3] = np.clip(arrays["colors"], 0.0, 1.0)
    rgba[:, 3] = opacities
    display = {
        "color": rgba,
        "opacity": opacities,
        "scale": scales,
        "rotation": arrays["quats"],
        "radius": point_radius(scales),
    }
    for attribute, values in display.items():
        _add_attribute(mesh, attribute, DISPLAY_ATTRIBUTES[attribute], values)
    gaussians = display_attributes(arrays["quats"], scales, opacities, arrays["colors"])
    for attribute, values in gaussians.items():
        kind = (
            ("FLOAT_COLOR", "color", 4) if values.shape[1] == 4 else ("FLOAT_VECTOR", "vector", 3)
        )
        _add_attribute(mesh, attribute, kind, values)
    gs = gs_parameters(arrays)
    for attribute, spec in GS_ATTRIBUTES.items():
        _add_attribute(mesh, attribute, spec, gs[attribute])
    if "f_rest" in gs:
        for index in range(gs["f_rest"].shape[1]):
            _add_attribute(mesh, f"f_rest_{index}", ("FLOAT", "value", 1), gs["f_rest"][:, index])
    mesh.update()
    return mesh


def import_splat(
    context: bpy.types.Context,
    arrays: Mapping[str, np.ndarray],
    parent: bpy.types.Object | None,
    collection: bpy.types.Collection,
    name: str = "VideoScene Splat",
    native: bool | None = None,
) -> bpy.types.Object:
    """Create the point-cloud object (positions in the splat frame) parented under `parent`.
    `native`: Blender's own Gaussian splat rather than the add-on's display (None: native
    where this Blender has it). On failure nothing it made is left behind."""
    if native is None:
        native = compat.native_gaussian_splats()
    with removed_on_error():
        if native:
            validate_splat_arrays(arrays)
            data = native_point_cloud(name, arrays["means"], gs_parameters(arrays))
        else:
            data = splat_mesh(name, arrays)
        obj = bpy.data.objects.new(name, data)
        collection.objects.link(obj)
        if parent is not None:
            obj.parent = parent
        try:
            if native:
                return show_native(obj)
            compat.make_point_cloud(context, obj)
            return display.show_gaussians(obj)
        except Exception as exc:
            raise VideoSceneError(
                ErrorCode.INTERNAL,
                f"Blender {bpy.app.version_string} could not make the splat's point cloud: "
                f"{type(exc).__name__}: {exc}",
                "Report this with your Blender version; File > Import > Gaussian Splat (.ply) "
                "can open the scene's PLY meanwhile.",
            ) from exc


# -- reading a splat back -------------------------------------------------------------------
def _read(attributes, name: str, key: str, width: int, count: int) -> np.ndarray:
    values = np.empty(count * width, dtype=np.float32)
    attributes[name].data.foreach_get(key, values)
    return values.reshape(count, width) if width > 1 else values


def splat_columns(obj: bpy.types.Object) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(positions in the splat frame, 3DGS parameters) of a splat object, on both point-cloud
    paths; a splat without stored 3DGS parameters gets them from its display attributes."""
    data = getattr(obj, "data", None)
    attributes = getattr(data, "attributes", None)
    if attributes is None or "position" not in attributes:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS, f"{obj.name!r} is not a point cloud or mesh.", NOT_A_SPLAT_HINT
        )
    count = len(attributes["position"].data)
    means = _read(attributes, "position", "vector", 3, count)
    if set(attributes.keys()) >= NATIVE_SPLAT_ATTRIBUTES:  # Blender's own splat (5.3+)
        return _checked(obj, means, gs_from_native(read_native(attributes, count)))
    gs: dict[str, np.ndarray] = {}
    for attribute, (_kind, key, width) in GS_ATTRIBUTES.items():
        if attribute in attributes and attributes[attribute].domain == "POINT":
            gs[attribute] = _read(attributes, attribute, key, width, count)
    rest = sorted(int(m.group(1)) for name in attributes.keys() if (m := F_REST.fullmatch(name)))
    if rest:
        columns = [_read(attributes, f"f_rest_{i}", "value", 1, count) for i in rest]
        gs["f_rest"] = np.stack(columns, axis=1)
    sources = {"f_dc": "color", "opacity_logit": "opacity", "log_scale": "scale", "rot": "rotation"}
    missing = [sources[key] for key in sources if key not in gs and sources[key] not in attributes]
    if missing:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"{obj.name!r} is not a Gaussian splat: it has no {', '.join(missing)} attribute.",
            NOT_A_SPLAT_HINT,
        )
    derived = {}
    if "f_dc" not in gs:
        derived["colors"] = _read(attributes, "color", "color", 4, count)[:, :3]
    for key, (attribute, target) in {
        "opacity_logit": ("opacity", "opacities"),
        "log_scale": ("scale", "scales"),
        "rot": ("rotation", "quats"),
    }.items():
        if key not in gs:
            _kind, foreach_key, width = DISPLAY_ATTRIBUTES[attribute]
            derived[target] = _read(attributes, attribute, foreach_key, width, count)
    if derived:
        gs = gs_parameters({**derived, **gs})
    return _checked(obj, means, gs)


def _checked(
    obj: bpy.types.Object, means: np.ndarray, gs: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if len(means) == 0:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS, f"{obj.name!r} has no points.", NOT_A_SPLAT_HINT
        )
    for name, values in {"position": means, **gs}.items():
        if not np.all(np.isfinite(values)):
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"{obj.name!r} has non-finite {name} values; a PLY with them would be unreadable.",
                "Fix or remove the edited points, or import the splat again.",
            )
    return means, gs

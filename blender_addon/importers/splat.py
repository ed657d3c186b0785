"""Gaussian splat arrays -> a point-cloud object under the "VideoScene Scene" empty.

Everything goes through numpy + foreach_set (no per-point Python loops): half a million
Gaussians import in well under a second. The point cloud carries the Gaussians' colour,
opacity, scale and rotation as POINT attributes, and a radius from the scale for the viewport.
"""

from __future__ import annotations

from collections.abc import Mapping

import bpy
import numpy as np

from .._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ..compat import temp_override

SPLAT_FIELDS = {"means": 3, "quats": 4, "scales": 3, "opacities": 0, "colors": 3}
MATERIAL_NAME = "VideoScene Splat"
# Viewport radius = this many standard deviations of the Gaussian's mean scale (keeps spheres
# small enough that neighbours don't swallow each other).
RADIUS_SIGMAS = 1.0


def validate_splat_arrays(arrays: Mapping[str, np.ndarray]) -> int:
    """Check names, shapes and finiteness; return the number of Gaussians."""
    missing = [name for name in SPLAT_FIELDS if name not in arrays]
    if missing:
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            f"The scene result lacks the arrays {missing}.",
            "The backend and add-on versions may differ: update both.",
        )
    count = int(np.asarray(arrays["means"]).shape[0])
    for name, width in SPLAT_FIELDS.items():
        shape = np.shape(arrays[name])
        expected = (count, width) if width else (count,)
        if shape != expected:
            raise VideoSceneError(
                ErrorCode.SHAPE_MISMATCH,
                f"Splat array {name!r} has shape {shape}, expected {expected}.",
                "The backend and add-on versions may differ: update both.",
            )
    return count


def _flat_f32(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).ravel()


def _add_attribute(mesh: bpy.types.Mesh, name: str, kind: str, key: str, values: np.ndarray):
    attribute = mesh.attributes.new(name, kind, "POINT")
    attribute.data.foreach_set(key, _flat_f32(values))
    return attribute


def splat_mesh(name: str, arrays: Mapping[str, np.ndarray]) -> bpy.types.Mesh:
    """A vertex-only mesh with one vertex per Gaussian and its attributes."""
    count = validate_splat_arrays(arrays)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(count)
    mesh.vertices.foreach_set("co", _flat_f32(arrays["means"]))
    opacities = np.asarray(arrays["opacities"], dtype=np.float32)
    rgba = np.empty((count, 4), dtype=np.float32)
    rgba[:, :3] = np.clip(arrays["colors"], 0.0, 1.0)
    rgba[:, 3] = opacities
    _add_attribute(mesh, "color", "FLOAT_COLOR", "color", rgba)
    _add_attribute(mesh, "opacity", "FLOAT", "value", opacities)
    _add_attribute(mesh, "scale", "FLOAT_VECTOR", "vector", arrays["scales"])
    _add_attribute(mesh, "rotation", "QUATERNION", "value", arrays["quats"])
    radius = RADIUS_SIGMAS * np.asarray(arrays["scales"], dtype=np.float32).mean(axis=1)
    _add_attribute(mesh, "radius", "FLOAT", "value", radius)
    mesh.update()
    return mesh


def splat_material() -> bpy.types.Material:
    """Colours points by their "color" attribute (shared by every imported splat)."""
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is not None:
        return material
    material = bpy.data.materials.new(MATERIAL_NAME)
    if material.node_tree is None:  # before 5.0 new materials have no node tree yet
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    attribute = nodes.new("ShaderNodeAttribute")
    attribute.attribute_name = "color"
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(attribute.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    material.diffuse_color = (0.8, 0.8, 0.8, 1.0)
    return material


def _convert_to_point_cloud(context: bpy.types.Context, obj: bpy.types.Object) -> bpy.types.Object:
    """Mesh object -> point cloud object in place (attributes carry over). Point clouds cannot be
    resized from Python, so the mesh route is how Blender lets us fill one quickly."""
    with temp_override(
        context,
        active_object=obj,
        object=obj,
        selected_objects=[obj],
        selected_editable_objects=[obj],
    ):
        result = bpy.ops.object.convert(target="POINTCLOUD")
    if "FINISHED" not in result or obj.type != "POINTCLOUD":
        raise VideoSceneError(
            ErrorCode.INTERNAL,
            "Blender could not convert the splat mesh into a point cloud.",
            "Report this with your Blender version.",
        )
    return obj


def import_splat(
    context: bpy.types.Context,
    arrays: Mapping[str, np.ndarray],
    parent: bpy.types.Object | None,
    collection: bpy.types.Collection,
    name: str = "VideoScene Splat",
) -> bpy.types.Object:
    """Create the point-cloud object (positions in the splat frame) parented under `parent`."""
    mesh = splat_mesh(name, arrays)
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    if parent is not None:
        obj.parent = parent
    obj = _convert_to_point_cloud(context, obj)
    obj.data.materials.append(splat_material())
    if mesh.users == 0:  # the conversion leaves the source mesh orphaned
        bpy.data.meshes.remove(mesh)
    return obj

"""Differences between the Blender versions the add-on supports (4.2 .. 5.x).

Renamed types and collections are looked up by name at call time, never at import time, so
importing the add-on works on every version.
"""

from __future__ import annotations

from typing import Any

import bpy


def sequence_editor_strips(scene: bpy.types.Scene) -> Any:
    """The sequencer's top-level strip collection: `strips` (4.4+) or `sequences` (older)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = getattr(editor, "strips", None)
    return strips if strips is not None else editor.sequences


def sequence_editor_all_strips(scene: bpy.types.Scene) -> Any:
    """Every strip including those inside meta strips: `strips_all` (4.4+) or `sequences_all`."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = getattr(editor, "strips_all", None)
    return strips if strips is not None else editor.sequences_all


def action_fcurves(obj: bpy.types.Object) -> list[Any]:
    """F-curves of the object's action: the assigned slot's channelbag on layered actions (4.4+,
    the only kind in 5.0 where `action.fcurves` is gone), else `action.fcurves`."""
    anim = obj.animation_data
    if anim is None or anim.action is None:
        return []
    action = anim.action
    slot = getattr(anim, "action_slot", None)
    if slot is not None:
        try:
            from bpy_extras.anim_utils import action_get_channelbag_for_slot
        except ImportError:
            action_get_channelbag_for_slot = None
        if action_get_channelbag_for_slot is not None:
            channelbag = action_get_channelbag_for_slot(action, slot)
            return list(channelbag.fcurves) if channelbag is not None else []
    legacy = getattr(action, "fcurves", None)
    return list(legacy) if legacy is not None else []


def is_animated(obj: bpy.types.Object) -> bool:
    """True when the object (or one of its parents) has keyframes or has constraints."""
    while obj is not None:
        if action_fcurves(obj) or len(obj.constraints) > 0:
            return True
        obj = obj.parent
    return False


def temp_override(context: bpy.types.Context, **kwargs: Any) -> Any:
    """context.temp_override (3.2+); kept here so operators don't guess the API."""
    return context.temp_override(**kwargs)


# -- Point clouds -----------------------------------------------------------------------------
POINTS_NODE_GROUP = "VideoScene Mesh to Points"
POINTS_MODIFIER = "VideoScene Points"


def can_convert_to_point_cloud() -> bool:
    """True where object.convert offers target POINTCLOUD (Blender 4.5+)."""
    target = bpy.ops.object.convert.get_rna_type().properties["target"]
    return "POINTCLOUD" in target.enum_items.keys()


def make_point_cloud(
    context: bpy.types.Context,
    obj: bpy.types.Object,
    material: bpy.types.Material,
    convert: bool | None = None,
) -> bpy.types.Object:
    """Show a vertex-only mesh object (one vertex per point, POINT attributes, a "radius"
    attribute) as a point cloud with `material`, keeping every attribute.

    Point clouds cannot be resized from Python, so a mesh is how Blender lets us fill one fast.
    Blender 4.5+ converts the object in place to a POINTCLOUD object. Before 4.5 (or with
    convert=False) the object stays a mesh and a Geometry Nodes modifier (Mesh to Points, radius
    from the attribute, the material) makes the same points when evaluated; its mesh still holds
    the attributes, so readers use `obj.data.attributes` on both paths.
    """
    if convert is None:
        convert = can_convert_to_point_cloud()
    if convert:
        mesh = obj.data
        with temp_override(
            context,
            active_object=obj,
            object=obj,
            selected_objects=[obj],
            selected_editable_objects=[obj],
        ):
            result = bpy.ops.object.convert(target="POINTCLOUD")
        if "FINISHED" not in result or obj.type != "POINTCLOUD":
            raise RuntimeError(f"object.convert(target='POINTCLOUD') returned {result}")
        if mesh.users == 0:  # the conversion leaves the source mesh orphaned
            bpy.data.meshes.remove(mesh)
    else:
        modifier = obj.modifiers.new(POINTS_MODIFIER, "NODES")
        modifier.node_group = _points_node_group(material)
    obj.data.materials.append(material)
    return obj


def _points_node_group(material: bpy.types.Material) -> bpy.types.NodeTree:
    """Mesh to Points with the radius from the "radius" attribute, then Set Material (shared
    by every splat that uses `material`; the other attributes propagate to the points)."""
    name = f"{POINTS_NODE_GROUP} ({material.name})"
    group = bpy.data.node_groups.get(name)
    if group is not None and group.bl_idname == "GeometryNodeTree":
        return group
    group = bpy.data.node_groups.new(name, "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    group_in, group_out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    to_points = nodes.new("GeometryNodeMeshToPoints")
    to_points.mode = "VERTICES"
    radius = nodes.new("GeometryNodeInputNamedAttribute")
    radius.data_type = "FLOAT"
    radius.inputs["Name"].default_value = "radius"
    set_material = nodes.new("GeometryNodeSetMaterial")
    set_material.inputs["Material"].default_value = material
    links.new(group_in.outputs[0], to_points.inputs["Mesh"])
    links.new(radius.outputs["Attribute"], to_points.inputs["Radius"])
    links.new(to_points.outputs["Points"], set_material.inputs["Geometry"])
    links.new(set_material.outputs["Geometry"], group_out.inputs[0])
    for index, node in enumerate((group_in, radius, to_points, set_material, group_out)):
        node.location = (200.0 * index, 0.0)
    return group

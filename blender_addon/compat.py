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
def can_convert_to_point_cloud() -> bool:
    """True where object.convert offers target POINTCLOUD (Blender 4.5+)."""
    target = bpy.ops.object.convert.get_rna_type().properties["target"]
    return "POINTCLOUD" in target.enum_items.keys()


def make_point_cloud(
    context: bpy.types.Context, obj: bpy.types.Object, convert: bool | None = None
) -> bpy.types.Object:
    """Make a vertex-only mesh object (one vertex per point, POINT attributes) a point cloud,
    keeping every attribute.

    Point clouds cannot be resized from Python, so a mesh is how Blender lets us fill one fast.
    Blender 4.5+ converts the object in place to a POINTCLOUD object. Before 4.5 (or with
    convert=False) the object stays a mesh and the display modifier (display/modifier.py) makes
    the points from its vertices when evaluated; its mesh still holds the attributes, so readers
    use `obj.data.attributes` on both paths.
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
    return obj


def eevee_engine() -> str:
    """EEVEE's render engine id: 'BLENDER_EEVEE_NEXT' from 4.2 until it took the old name back
    ('BLENDER_EEVEE', 5.0), read from the engine list rather than guessed from the version."""
    engines = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in engines else "BLENDER_EEVEE"

"""Differences between the Blender versions the add-on supports (4.5 LTS .. 5.3 and later).

Each difference is a feature check (does this Blender have X?), never a version comparison.

Renamed types and collections are looked up by name at call time, never at import time, so
importing the add-on works on every version.
"""

from __future__ import annotations

from typing import Any

import bpy


def sequence_editor_strips(scene: bpy.types.Scene) -> Any:
    """The sequencer's top-level strip collection (`strips`: 4.4+, where `sequences` went)."""
    return (scene.sequence_editor or scene.sequence_editor_create()).strips


def sequence_editor_all_strips(scene: bpy.types.Scene) -> Any:
    """Every strip including those inside meta strips (`strips_all`: 4.4+)."""
    return (scene.sequence_editor or scene.sequence_editor_create()).strips_all


def strip_span(strip: Any) -> tuple[int, int]:
    """(first frame, first frame after) a strip shows: its handles, `left_handle` and
    `right_handle` from 5.3, `frame_final_start` / `frame_final_end` before (deprecated in 5.3,
    to be removed in 6.0)."""
    if hasattr(strip, "left_handle"):
        return strip.left_handle, strip.right_handle
    return strip.frame_final_start, strip.frame_final_end


def action_fcurves(obj: bpy.types.Object) -> list[Any]:
    """F-curves of the object's action: the assigned slot's channelbag (layered actions, 4.4+;
    5.0 removed `action.fcurves`)."""
    anim = obj.animation_data
    if anim is None or anim.action is None or anim.action_slot is None:
        return []
    from bpy_extras.anim_utils import action_get_channelbag_for_slot

    channelbag = action_get_channelbag_for_slot(anim.action, anim.action_slot)
    return list(channelbag.fcurves) if channelbag is not None else []


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
def native_gaussian_splats() -> bool:
    """True where Blender draws 3D Gaussian splats itself: a point cloud of type GAUSSIAN_SPLAT
    (Blender 5.3+), with the attributes its own 3DGS PLY import writes."""
    kind = bpy.types.PointCloud.bl_rna.properties.get("type")
    return kind is not None and "GAUSSIAN_SPLAT" in kind.enum_items.keys()


def make_point_cloud(context: bpy.types.Context, obj: bpy.types.Object) -> bpy.types.Object:
    """Make a vertex-only mesh object (one vertex per point, POINT attributes) a point cloud in
    place, keeping every attribute.

    Before 5.2 point clouds cannot be resized from Python, so a mesh is how Blender lets us fill
    one fast; object.convert(target='POINTCLOUD') (Blender 4.5+) then makes it a point cloud.
    """
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


# -- Geometry Nodes modifier inputs -----------------------------------------------------------
# Blender 5.2 made a nodes modifier's group inputs RNA properties
# (modifier.properties.inputs.<identifier>.value); before, they were ID properties
# (modifier["<identifier>"]), which 5.2+ no longer support at all.
def _rna_input(modifier: bpy.types.Modifier, identifier: str) -> Any | None:
    inputs = getattr(getattr(modifier, "properties", None), "inputs", None)
    return None if inputs is None else getattr(inputs, identifier)


def modifier_input_owner(modifier: bpy.types.Modifier, identifier: str) -> tuple[Any, str]:
    """(struct, property path) of a group input, as UILayout.prop and path_resolve take them."""
    rna = _rna_input(modifier, identifier)
    return (modifier, f'["{identifier}"]') if rna is None else (rna, "value")


def get_modifier_input(modifier: bpy.types.Modifier, identifier: str) -> Any:
    rna = _rna_input(modifier, identifier)
    return modifier[identifier] if rna is None else rna.value


def set_modifier_input(modifier: bpy.types.Modifier, identifier: str, value: Any) -> None:
    rna = _rna_input(modifier, identifier)
    if rna is None:
        modifier[identifier] = value
    else:
        rna.value = value


def modifier_input_path(modifier: bpy.types.Modifier, identifier: str) -> str:
    """The data path, from the modifier's object, of a group input (for drivers)."""
    base = f'modifiers["{modifier.name}"]'
    if _rna_input(modifier, identifier) is None:
        return f'{base}["{identifier}"]'
    return f"{base}.properties.inputs.{identifier}.value"


def eevee_engine() -> str:
    """EEVEE's render engine id: 'BLENDER_EEVEE_NEXT' from 4.2 until it took the old name back
    ('BLENDER_EEVEE', 5.0), read from the engine list rather than guessed from the version."""
    engines = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in engines else "BLENDER_EEVEE"

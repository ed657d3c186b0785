"""Functions that registered property groups hold: the object pickers' poll callbacks and the
settings' helper methods.

This module must never import bpy (or anything that does). Blender 4.2 keeps a reference to a
PointerProperty's poll function and to a pointer-registered PropertyGroup class after they are
unregistered. A function defined in a module that imports bpy then keeps, through its globals,
the bpy module alive past interpreter shutdown, so Blender's own exit never runs and the process
crashes in a static destructor (exit code 139) once the add-on was disabled and its repository
removed. Functions whose globals are this bpy-free module leave nothing behind that matters.
tests/addon/test_registration.py runs that cycle in a subprocess on every tested Blender.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type hints only: at run time nothing here may lead to bpy
    import bpy


def is_camera(_settings: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    """Poll for the camera picker: camera objects only."""
    return obj.type == "CAMERA"


def is_empty(_settings: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    """Poll for the scene picker: empties only (the "VideoScene Scene" empty)."""
    return obj.type == "EMPTY"


def frame_range(settings: bpy.types.PropertyGroup, scene: bpy.types.Scene) -> tuple[int, int]:
    """The frames to render: the scene's range or the settings' own."""
    if settings.use_scene_range:
        return scene.frame_start, scene.frame_end
    return settings.frame_start, settings.frame_end


def active_camera(
    settings: bpy.types.PropertyGroup, scene: bpy.types.Scene
) -> bpy.types.Object | None:
    """The picked camera, else the scene camera (None when neither is set)."""
    return settings.camera or scene.camera

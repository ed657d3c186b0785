"""Property groups: the job settings (saved with the scene) and the live job state (window
manager, never saved)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import rna_callbacks
from ._vendor.videoscene_protocol.params import BUILD_SCENE, FIT_SCENE, RENDER_VIDEO
from .param_settings import enum_items, setting_properties


class VideoSceneSettings(bpy.types.PropertyGroup):
    image_a: StringProperty(
        name="Photo A", subtype="FILE_PATH", description="First photo (PNG, JPEG, HEIC or WebP)"
    )
    image_b: StringProperty(
        name="Photo B", subtype="FILE_PATH", description="Second photo (PNG, JPEG, HEIC or WebP)"
    )
    camera: PointerProperty(
        name="Camera",
        type=bpy.types.Object,
        poll=rna_callbacks.is_camera,
        description="The animated camera to render along (empty: the scene camera)",
    )
    scene_empty: PointerProperty(
        name="Scene",
        type=bpy.types.Object,
        poll=rna_callbacks.is_empty,
        description="The 'VideoScene Scene' empty of the built scene (its transform places it)",
    )
    use_scene_range: BoolProperty(
        name="Scene Frame Range", default=True, description="Use the scene's frame range"
    )
    frame_start: IntProperty(name="Start", default=1, min=0)
    frame_end: IntProperty(name="End", default=49, min=0)
    preview: BoolProperty(
        name="Preview",
        description=(
            "Generate at half the output resolution and every second frame, for fast "
            "iteration (each image then holds two frames in the strip)"
        ),
        default=False,
    )
    keyframe_flythrough: BoolProperty(
        name="Keyframe Reference Flythrough",
        description="After Build Scene, animate the camera from reference camera 0 to 1",
        default=True,
    )
    # The job settings (prior, fov_deg, refine, seed, memory_mode, ...) are added below from the
    # params spec; memory_mode gets one more choice: the preferences' default.

    # Functions this class holds live in rna_callbacks (no bpy there): see its docstring.
    frame_range = rna_callbacks.frame_range
    active_camera = rna_callbacks.active_camera


_JOB_SETTINGS = {
    **setting_properties(BUILD_SCENE),
    **setting_properties(RENDER_VIDEO),
    **setting_properties(FIT_SCENE),  # Rebuild Scene from Video
}
_JOB_SETTINGS["memory_mode"] = EnumProperty(
    name=RENDER_VIDEO["memory_mode"].title,
    description=RENDER_VIDEO["memory_mode"].doc,
    items=[("default", "Preferences Default", "The add-on preferences' memory mode")]
    + enum_items(RENDER_VIDEO["memory_mode"]),
    default="default",
)
VideoSceneSettings.__annotations__.update(_JOB_SETTINGS)


class VideoSceneState(bpy.types.PropertyGroup):
    busy: BoolProperty(default=False)
    status: StringProperty(name="Status", default="Idle")
    stage: StringProperty(default="")
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    error_message: StringProperty(default="")
    error_hint: StringProperty(default="")
    refine_message: StringProperty(default="")
    fov_info: StringProperty(default="")  # the last build's field of view and its source


classes = (VideoSceneSettings, VideoSceneState)


def register_pointers() -> None:
    bpy.types.Scene.videoscene = PointerProperty(type=VideoSceneSettings)
    bpy.types.WindowManager.videoscene_state = PointerProperty(type=VideoSceneState)


def unregister_pointers() -> None:
    del bpy.types.WindowManager.videoscene_state
    del bpy.types.Scene.videoscene

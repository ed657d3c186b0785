"""Property groups: the job settings (saved with the scene) and the live job state (window
manager, never saved)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import rna_callbacks
from .preferences import MEMORY_MODES

PRIORS = [
    ("auto", "Auto", "NoPoSplat when its weights are installed, else the stereo prior"),
    ("stereo", "Stereo", "Two-view stereo (OpenCV): needs no weights"),
    ("noposplat", "NoPoSplat", "Pose-free feed-forward Gaussians (needs its checkpoint)"),
]
CONDITION_SOURCES = [
    ("rendered", "Rendered Frames", "Condition the video model on the first and last renders"),
    ("photos", "Photos", "Condition the video model on the two reference photos"),
]
REFINE_MODES = [
    ("one_step", "One Step", "VideoScene's distilled single forward pass"),
    ("multi_step", "Multi Step", "Several denoising steps (for comparison; slower)"),
]


class VideoSceneSettings(bpy.types.PropertyGroup):
    image_a: StringProperty(name="Photo A", subtype="FILE_PATH", description="First photo")
    image_b: StringProperty(name="Photo B", subtype="FILE_PATH", description="Second photo")
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
    prior: EnumProperty(name="Prior", items=PRIORS, default="auto")
    fov_deg: FloatProperty(
        name="Photo FOV",
        description="Horizontal field of view of the photos in degrees (0: estimate)",
        default=0.0,
        min=0.0,
        max=170.0,
    )
    keyframe_flythrough: BoolProperty(
        name="Keyframe Reference Flythrough",
        description="After Build Scene, animate the camera from reference camera 0 to 1",
        default=True,
    )
    refine: BoolProperty(
        name="Refine", default=True, description="Run the video model (else coarse frames only)"
    )
    leap_timestep: IntProperty(
        name="Leap Timestep",
        description="Noise level the one-step model starts from (0: the model's default)",
        default=0,
        min=0,
        max=999,
    )
    seed: IntProperty(name="Seed", default=0, min=0)
    mode: EnumProperty(name="Mode", items=REFINE_MODES, default="one_step")
    steps: IntProperty(name="Steps", default=50, min=1, max=200)
    guidance_scale: FloatProperty(name="Guidance", default=6.0, min=1.0, max=20.0)
    memory_mode: EnumProperty(
        name="Memory",
        items=[("default", "Preferences Default", "The add-on preferences' memory mode")]
        + MEMORY_MODES,
        default="default",
    )
    condition_source: EnumProperty(name="Condition", items=CONDITION_SOURCES, default="rendered")
    background: FloatVectorProperty(
        name="Background", subtype="COLOR", size=3, min=0.0, max=1.0, default=(0.0, 0.0, 0.0)
    )
    near: FloatProperty(name="Near", default=0.01, min=1e-5)
    far: FloatProperty(name="Far", default=1000.0, min=1e-3)

    # Functions this class holds live in rna_callbacks (no bpy there): see its docstring.
    frame_range = rna_callbacks.frame_range
    active_camera = rna_callbacks.active_camera


class VideoSceneState(bpy.types.PropertyGroup):
    busy: BoolProperty(default=False)
    status: StringProperty(name="Status", default="Idle")
    stage: StringProperty(default="")
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    error_message: StringProperty(default="")
    error_hint: StringProperty(default="")
    refine_message: StringProperty(default="")


classes = (VideoSceneSettings, VideoSceneState)


def register_pointers() -> None:
    bpy.types.Scene.videoscene = PointerProperty(type=VideoSceneSettings)
    bpy.types.WindowManager.videoscene_state = PointerProperty(type=VideoSceneState)


def unregister_pointers() -> None:
    del bpy.types.WindowManager.videoscene_state
    del bpy.types.Scene.videoscene

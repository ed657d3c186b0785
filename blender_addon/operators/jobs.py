"""Build Scene, Generate Video, Cancel, Release GPU, Keyframe Flythrough, and an error reporter
for asynchronous errors. Operators only submit work; client_glue finishes it."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from .. import workflow
from .._vendor.videoscene_protocol.errors import VideoSceneError
from ..client_glue import SESSION


def _show(operator: bpy.types.Operator, context: bpy.types.Context, error: VideoSceneError):
    state = context.window_manager.videoscene_state
    state.error_message, state.error_hint = error.message, error.hint
    state.status = f"Error ({error.code.value})"
    state.busy = bool(SESSION.jobs or SESSION.queue)
    operator.report({"ERROR"}, str(error))
    return {"CANCELLED"}


class VIDEOSCENE_OT_build_scene(bpy.types.Operator):
    bl_idname = "videoscene.build_scene"
    bl_label = "Build Scene"
    bl_description = "Build a 3D Gaussian scene from the two photos on the backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            workflow.start_build(context)
        except VideoSceneError as error:
            return _show(self, context, error)
        return {"FINISHED"}


class VIDEOSCENE_OT_generate_video(bpy.types.Operator):
    bl_idname = "videoscene.generate_video"
    bl_label = "Generate Video"
    bl_description = (
        "Render the camera path through the scene and refine it with the video model "
        "(builds the scene first when there is none)"
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            workflow.start_render(context)
        except VideoSceneError as error:
            return _show(self, context, error)
        return {"FINISHED"}


class VIDEOSCENE_OT_keyframe_flythrough(bpy.types.Operator):
    bl_idname = "videoscene.keyframe_flythrough"
    bl_label = "Keyframe Reference Flythrough"
    bl_description = "Animate the camera from reference camera 0 to 1 over the frame range"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            workflow.keyframe_flythrough(context.scene)
        except VideoSceneError as error:
            return _show(self, context, error)
        return {"FINISHED"}


class VIDEOSCENE_OT_cancel(bpy.types.Operator):
    bl_idname = "videoscene.cancel"
    bl_label = "Cancel"
    bl_description = "Cancel the running jobs"

    def execute(self, context: bpy.types.Context) -> set[str]:
        count = SESSION.cancel()
        self.report({"INFO"}, f"Cancelling {count} job(s)")
        return {"FINISHED"}


class VIDEOSCENE_OT_release_gpu(bpy.types.Operator):
    bl_idname = "videoscene.release_gpu"
    bl_label = "Release GPU"
    bl_description = "Ask the backend to unload its models and free GPU memory"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            SESSION.release_models()
        except VideoSceneError as error:
            return _show(self, context, error)
        context.window_manager.videoscene_state.status = "GPU memory released"
        self.report({"INFO"}, "Backend models released")
        return {"FINISHED"}


class VIDEOSCENE_OT_import_splat_ply(bpy.types.Operator, ImportHelper):
    """Import a Gaussian-splat PLY (3DGS layout) as a point cloud under a scene empty"""

    bl_idname = "videoscene.import_splat_ply"
    bl_label = "Import Gaussian Splat (.ply)"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        from ..importers.ply import splat_arrays_from_ply

        try:
            arrays = splat_arrays_from_ply(Path(self.filepath))
            workflow.import_ply_scene(context, Path(self.filepath), arrays)
        except VideoSceneError as error:
            return _show(self, context, error)
        self.report({"INFO"}, f"Imported {len(arrays['means'])} Gaussians")
        return {"FINISHED"}


def menu_import(self, context: bpy.types.Context) -> None:
    self.layout.operator(VIDEOSCENE_OT_import_splat_ply.bl_idname, text="Gaussian Splat (.ply)")


class VIDEOSCENE_OT_report(bpy.types.Operator):
    """Shows an asynchronous message in Blender's report area (called from the timer)."""

    bl_idname = "videoscene.report"
    bl_label = "VideoScene Report"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[(v, v, "") for v in ("INFO", "WARNING", "ERROR")], default="INFO")
    message: StringProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


classes = (
    VIDEOSCENE_OT_build_scene,
    VIDEOSCENE_OT_generate_video,
    VIDEOSCENE_OT_keyframe_flythrough,
    VIDEOSCENE_OT_cancel,
    VIDEOSCENE_OT_release_gpu,
    VIDEOSCENE_OT_import_splat_ply,
    VIDEOSCENE_OT_report,
)

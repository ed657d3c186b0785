"""Build Scene, Generate Video, Rebuild Scene from Video, Cancel, Release GPU, Keyframe Flythrough, and an error reporter
for asynchronous errors. Operators only submit work; client_glue finishes it. Every failure is
shown as a VideoScene error with a hint (reporting.reports_errors)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from .. import workflow
from ..client_glue import SESSION
from .reporting import reports_errors


class VIDEOSCENE_OT_build_scene(bpy.types.Operator):
    bl_idname = "videoscene.build_scene"
    bl_label = "Build Scene"
    bl_description = "Build a 3D Gaussian scene from the two photos on the backend"

    @reports_errors
    def execute(self, context: bpy.types.Context) -> set[str]:
        workflow.start_build(context)
        return {"FINISHED"}


class VIDEOSCENE_OT_generate_video(bpy.types.Operator):
    bl_idname = "videoscene.generate_video"
    bl_label = "Generate Video"
    bl_description = (
        "Render the camera path through the scene and refine it with the video model "
        "(builds the scene first when there is none)"
    )

    @reports_errors
    def execute(self, context: bpy.types.Context) -> set[str]:
        workflow.start_render(context)
        return {"FINISHED"}


class VIDEOSCENE_OT_rebuild_scene(bpy.types.Operator):
    bl_idname = "videoscene.rebuild_scene"
    bl_label = "Rebuild Scene from Video"
    bl_description = (
        "Fit a new scene to the frames of the last Generate Video (or the given render job) "
        "on the backend; it replaces the splat under the same scene empty, the old one is "
        "hidden, and later videos render from the new scene"
    )

    render_job: StringProperty(
        name="Render Job",
        description="A render job's id or folder (empty: the last Generate Video of this scene)",
        default="",
    )

    @reports_errors
    def execute(self, context: bpy.types.Context) -> set[str]:
        workflow.start_fit(context, self.render_job)
        return {"FINISHED"}


class VIDEOSCENE_OT_keyframe_flythrough(bpy.types.Operator):
    bl_idname = "videoscene.keyframe_flythrough"
    bl_label = "Keyframe Reference Flythrough"
    bl_description = "Animate the camera from reference camera 0 to 1 over the frame range"
    bl_options = {"REGISTER", "UNDO"}

    @reports_errors
    def execute(self, context: bpy.types.Context) -> set[str]:
        workflow.keyframe_flythrough(context.scene)
        return {"FINISHED"}


class VIDEOSCENE_OT_cancel(bpy.types.Operator):
    bl_idname = "videoscene.cancel"
    bl_label = "Cancel"
    bl_description = "Cancel the running jobs"

    @reports_errors
    def execute(self, context: bpy.types.Context) -> set[str]:
        count = SESSION.cancel()
        self.report({"INFO"}, f"Cancelling {count} job(s)")
        return {"FINISHED"}


class VIDEOSCENE_OT_release_gpu(bpy.types.Operator):
    bl_idname = "videoscene.release_gpu"
    bl_label = "Release GPU"
    bl_description = "Ask the backend to unload its models and free GPU memory"

    @reports_errors
    def execute(self, context: bpy.types.Context) -> set[str]:
        SESSION.release_models()
        context.window_manager.videoscene_state.status = "GPU memory released"
        self.report({"INFO"}, "Backend models released")
        return {"FINISHED"}


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
    VIDEOSCENE_OT_rebuild_scene,
    VIDEOSCENE_OT_keyframe_flythrough,
    VIDEOSCENE_OT_cancel,
    VIDEOSCENE_OT_release_gpu,
    VIDEOSCENE_OT_report,
)

"""The Splat Display box's buttons: order, colours, render settings (display/ does the work)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty

from .. import display
from ..display.modifier import display_modifier


def _splat(context: bpy.types.Context) -> bpy.types.Object | None:
    obj = context.active_object
    return obj if obj is not None and display_modifier(obj) is not None else None


class VIDEOSCENE_OT_splat_order(bpy.types.Operator):
    bl_idname = "videoscene.splat_order"
    bl_label = "Splat Order"
    bl_description = (
        "Sorted: blended, far to near for the scene camera, each Gaussian a quad facing it "
        "(exact renders from it, EEVEE and Cycles). "
        "Dithered: order-independent, converges as samples accumulate (any viewpoint)"
    )
    bl_options = {"REGISTER", "UNDO"}
    sorted_order: BoolProperty(name="Sorted for the Camera", default=True)

    @classmethod
    def poll(cls, context):
        splat = _splat(context)
        return splat is not None and not display.is_native_splat(splat)

    def execute(self, context):
        display.set_sorted(_splat(context), self.sorted_order)
        return {"FINISHED"}


class VIDEOSCENE_OT_splat_colours(bpy.types.Operator):
    bl_idname = "videoscene.splat_colours"
    bl_label = "Splat Colours"
    bl_description = (
        "Match: set this scene's view transform to Raw so Gaussians blend as the backend "
        "(3DGS) blends them. Otherwise: the Standard view, linear-light blending"
    )
    bl_options = {"REGISTER", "UNDO"}
    match: BoolProperty(name="Match the Backend", default=True)

    def execute(self, context):
        display.set_colours_match_backend(context.scene, self.match)
        view = context.scene.view_settings.view_transform
        self.report({"INFO"}, f"View transform set to {view}")
        return {"FINISHED"}


class VIDEOSCENE_OT_splat_render_settings(bpy.types.Operator):
    bl_idname = "videoscene.splat_render_settings"
    bl_label = "Render Settings for Splats"
    bl_description = (
        f"EEVEE: at least {display.DITHERED_SAMPLES} samples in the viewport and renders; Cycles: "
        f"{display.CYCLES_TRANSPARENT_BOUNCES} transparent bounces, no early stop"
    )
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        display.set_render_settings(context.scene)
        return {"FINISHED"}


classes = (
    VIDEOSCENE_OT_splat_order,
    VIDEOSCENE_OT_splat_colours,
    VIDEOSCENE_OT_splat_render_settings,
)

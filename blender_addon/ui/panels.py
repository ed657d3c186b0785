"""The VideoScene sidebar panels (3D viewport and sequencer share one layout)."""

from __future__ import annotations

import bpy

from .._vendor.videoscene_protocol.params import FIT_SCENE
from ..param_settings import auto_toggle


def _draw_status(layout: bpy.types.UILayout, state) -> None:
    box = layout.box()
    box.label(text=state.status, icon="TIME" if state.busy else "INFO")
    if state.busy and hasattr(layout, "progress"):  # UILayout.progress exists from 4.0
        box.progress(factor=state.progress, text=f"{state.stage} {state.progress:.0%}".strip())
    if state.error_message:
        col = box.column(align=True)
        col.alert = True
        col.label(text=state.error_message, icon="ERROR")
        if state.error_hint:
            col.label(text=state.error_hint)
    if state.refine_message:
        box.label(text=state.refine_message, icon="INFO")


def _draw_setting(layout: bpy.types.UILayout, settings, name: str) -> None:
    """A job setting; one with an Auto toggle draws the toggle and greys the value while on."""
    toggle = auto_toggle(settings, name)
    if toggle is None:
        layout.prop(settings, name)
        return
    row = layout.row(align=True)
    row.prop(settings, toggle, text="", icon="AUTO", toggle=True)
    value = row.row(align=True)
    value.active = not getattr(settings, toggle)
    value.prop(settings, name)


def draw_main(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    settings = context.scene.videoscene
    state = context.window_manager.videoscene_state
    col = layout.column()
    col.prop(settings, "image_a")
    col.prop(settings, "image_b")
    col.prop(settings, "prior")
    col.prop(settings, "camera")
    col.prop(settings, "scene_empty")
    if state.fov_info:  # after Build Scene: the field of view it used, and where from
        col.label(text=state.fov_info, icon="CAMERA_DATA")
    col.prop(settings, "use_scene_range")
    if not settings.use_scene_range:
        row = col.row(align=True)
        row.prop(settings, "frame_start")
        row.prop(settings, "frame_end")
    col.prop(settings, "keyframe_flythrough")
    col.prop(settings, "preview")
    row = layout.row(align=True)
    row.scale_y = 1.3
    row.operator("videoscene.build_scene", icon="POINTCLOUD_DATA")
    row.operator("videoscene.generate_video", icon="RENDER_ANIMATION")
    layout.operator("videoscene.rebuild_scene", icon="FILE_REFRESH")
    row = layout.row(align=True)
    row.operator("videoscene.cancel", icon="CANCEL")
    row.operator("videoscene.release_gpu", icon="MEMORY")
    layout.operator("videoscene.keyframe_flythrough", icon="CAMERA_DATA")
    _draw_status(layout, state)
    draw_splat_display(layout, context)


def draw_splat_display(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """The active splat's display: order, viewport density, colours (display/)."""
    from .. import compat, display
    from ..display.modifier import display_modifier, input_identifier

    obj = context.active_object
    modifier = display_modifier(obj) if obj is not None else None
    if modifier is None:
        return
    native = display.is_native_splat(obj)
    box = layout.box()
    box.label(text=f"Splat Display: {obj.name}", icon="POINTCLOUD_DATA")
    if native:
        box.label(text="Drawn by Blender as a Gaussian splat", icon="CHECKMARK")
    else:
        _draw_order(box, context, display.is_sorted(obj))
    owner, path = compat.modifier_input_owner(
        modifier, input_identifier(modifier, "Viewport Every")
    )
    box.prop(owner, path, text="Viewport: Every k-th")
    if display.colours_match_backend(context.scene, native):
        box.label(text="Colours: as the backend blends them (Raw view)", icon="CHECKMARK")
        box.operator("videoscene.splat_colours", text="Use Standard View").match = False
    else:
        view = context.scene.view_settings.view_transform
        box.label(text=f"Colours: {view} view, linear blending", icon="INFO")
        box.operator("videoscene.splat_colours", text="Match the Backend (Raw View)").match = True
    if not native and not display.dithered_converges(context.scene):
        box.label(
            text=f"Dithered needs {display.DITHERED_SAMPLES} samples to converge", icon="INFO"
        )
    box.operator("videoscene.splat_render_settings", icon="RENDER_STILL")


def _draw_order(box: bpy.types.UILayout, context: bpy.types.Context, sorted_order: bool) -> None:
    samples = context.scene.eevee.taa_samples
    box.label(
        text="Order: Sorted for the scene camera (blended, exact from it)"
        if sorted_order
        else f"Order: Dithered (any view, {samples} viewport samples)",
        icon="SORTSIZE" if sorted_order else "STICKY_UVS_DISABLE",
    )
    row = box.row(align=True)
    row.operator(
        "videoscene.splat_order", text="Dithered", depress=not sorted_order
    ).sorted_order = False
    row.operator("videoscene.splat_order", text="Sorted", depress=sorted_order).sorted_order = True


def draw_advanced(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    settings = context.scene.videoscene
    col = layout.column()
    col.prop(settings, "refine")
    sub = col.column()
    sub.active = settings.refine
    sub.prop(settings, "mode")
    _draw_setting(sub, settings, "leap_timestep")
    if settings.mode == "multi_step":
        sub.prop(settings, "steps")
        sub.prop(settings, "guidance_scale")
        sub.prop(settings, "start_from_noise")
    sub.prop(settings, "condition_source")
    sub.prop(settings, "memory_mode")
    col.prop(settings, "seed")
    _draw_setting(col, settings, "fov_deg")
    _draw_setting(col, settings, "pose_refine_steps")
    col.prop(settings, "background")
    row = col.row(align=True)
    row.prop(settings, "near")
    row.prop(settings, "far")
    col.separator()
    col.label(text="Rebuild Scene from Video", icon="FILE_REFRESH")
    for param in FIT_SCENE.params:  # the fit_scene params' settings, in the spec's order
        if param.setting:
            _draw_setting(col, settings, param.name)


class _MainPanel:
    bl_region_type = "UI"
    bl_category = "VideoScene"
    bl_label = "VideoScene"

    def draw(self, context: bpy.types.Context) -> None:
        draw_main(self.layout, context)


class _AdvancedPanel:
    bl_region_type = "UI"
    bl_category = "VideoScene"
    bl_label = "Advanced"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        draw_advanced(self.layout, context)


class VIDEOSCENE_PT_view3d(_MainPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"


class VIDEOSCENE_PT_view3d_advanced(_AdvancedPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_parent_id = "VIDEOSCENE_PT_view3d"


class VIDEOSCENE_PT_sequencer(_MainPanel, bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"


class VIDEOSCENE_PT_sequencer_advanced(_AdvancedPanel, bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_parent_id = "VIDEOSCENE_PT_sequencer"


classes = (
    VIDEOSCENE_PT_view3d,
    VIDEOSCENE_PT_view3d_advanced,
    VIDEOSCENE_PT_sequencer,
    VIDEOSCENE_PT_sequencer_advanced,
)

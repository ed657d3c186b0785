"""How a splat shows in Blender: the Gaussians themselves, in EEVEE, Cycles and Solid mode.

- attributes.py: the per-point attributes the display reads (numpy, from the splat arrays);
- material.py: the material that evaluates each Gaussian along the view ray;
- modifier.py: the Geometry Nodes modifier (points, screen blur, radius, sort, density);
- solid.py: the colours Solid mode (Workbench) shows;
- native.py: Blender's own Gaussian splats (5.3+), which Blender draws in every engine and in
  Solid mode itself; the add-on only adds the backend's screen blur and viewport thinning.
importers/splat.py gives every splat a display (built scenes and PLYs from any tool); the
display writes only its own attributes, so the exported PLY is the imported one.
"""

from __future__ import annotations

import bpy

from . import modifier, solid
from .material import gaussian_material
from .native import is_native_splat  # noqa: F401  (re-exported for the panel and operators)


def show_gaussians(obj: bpy.types.Object) -> bpy.types.Object:
    """Give a splat object (a point cloud, or a mesh of its points) the Gaussian display.

    Solid mode (Workbench) draws a point cloud in one material's viewport colour only, so the
    splat's own materials are hidden there and a companion mesh shows its colours (solid.py)."""
    data_materials = obj.data.materials
    data_materials.clear()
    data_materials.append(gaussian_material(sorted_order=False))
    for sorted_order in (False, True):
        solid.hide_in_workbench(gaussian_material(sorted_order))
    modifier.add_display_modifier(obj)
    solid.add_solid_companion(obj)
    obj.visible_shadow = False  # emissive Gaussians light nothing and cast nothing
    return obj


def dithered_converges(scene: bpy.types.Scene) -> bool:
    """True when the viewport and renders take enough EEVEE samples for the dithered display."""
    eevee = scene.eevee
    return min(eevee.taa_samples, eevee.taa_render_samples) >= DITHERED_SAMPLES


def is_sorted(obj: bpy.types.Object) -> bool:
    """Sorted for the scene camera (the add-on's display only: Blender orders native splats)."""
    return modifier.has_input(obj, "Sorted") and bool(modifier.get_input(obj, "Sorted"))


def set_sorted(obj: bpy.types.Object, value: bool) -> None:
    modifier.set_input(obj, "Sorted", bool(value))


def set_viewport_every(obj: bpy.types.Object, every: int) -> None:
    modifier.set_input(obj, "Viewport Every", max(1, int(every)))


# -- upkeep --------------------------------------------------------------------------------
_keeping = False  # the handler's own edits cause depsgraph updates too


@bpy.app.handlers.persistent
def _keep_companions(scene: bpy.types.Scene, depsgraph: bpy.types.Depsgraph | None = None):
    global _keeping
    if _keeping or (depsgraph is not None and not depsgraph.id_type_updated("OBJECT")):
        return
    if bpy.app.is_job_running("RENDER"):  # never edit the scene a render is reading
        return
    _keeping = True
    try:
        solid.keep_companions(scene)
    finally:
        _keeping = False


def register_handlers() -> None:
    handlers = bpy.app.handlers.depsgraph_update_post
    if _keep_companions not in handlers:
        handlers.append(_keep_companions)


def unregister_handlers() -> None:
    handlers = bpy.app.handlers.depsgraph_update_post
    if _keep_companions in handlers:
        handlers.remove(_keep_companions)


# -- colour ---------------------------------------------------------------------------------
# 3DGS composites display-referred sRGB values; Blender composites scene-linear light and then
# applies the view transform. Only a view that passes values through unchanged (Raw) with the
# Gaussians emitting their sRGB values reproduces the backend's composite exactly (the alpha
# falloff of an edge then blends as 3DGS blends it). The other choice emits linear light, right
# for opaque interiors under the Standard view, but edges and thin layers come out wider and
# brighter (the sRGB curve is applied after blending). Changing the view is the user's choice,
# made by an explicit button; the material (and Blender's own splats' display group,
# native.py) follows it.
MATCH_VIEW = "Raw"


def colours_match_backend(scene: bpy.types.Scene, native: bool = False) -> bool:
    """True when the scene's view and the splat's display (the material, or for Blender's own
    splats the native display group) both composite as 3DGS does."""
    return (
        scene.view_settings.view_transform == MATCH_VIEW and _referred(native).default_value > 0.5
    )


def _referred(native: bool) -> bpy.types.NodeSocket:
    """The Display Referred value of the add-on's material, or of native splats' group."""
    from . import material
    from . import native as native_display

    if native:
        return native_display.native_group().nodes[native_display.DISPLAY_REFERRED_NODE].outputs[0]
    return material.gaussian_group().nodes[material.DISPLAY_REFERRED_NODE].outputs[0]


def set_colours_match_backend(scene: bpy.types.Scene, match: bool) -> None:
    """Match: the Raw view (no look, exposure 0, gamma 1) and sRGB-valued Gaussians, for the
    add-on's display and Blender's own splats alike. Otherwise the Standard view and
    linear-light Gaussians. Called only on the user's request."""
    view = scene.view_settings
    view.view_transform = MATCH_VIEW if match else "Standard"
    view.look, view.exposure, view.gamma = "None", 0.0, 1.0
    for native in _displays_in_use():
        _referred(native).default_value = float(match)


def _displays_in_use() -> list[bool]:
    """Which displays' groups follow the choice (native or not): the one this Blender makes,
    and any other a file already holds; neither group is made where it would go unused."""
    from .. import compat
    from .material import GROUP_NAME
    from .native import NATIVE_GROUP_NAME

    groups = bpy.data.node_groups
    native_here = compat.native_gaussian_splats()
    return [
        native
        for native, name in ((False, GROUP_NAME), (True, NATIVE_GROUP_NAME))
        if name in groups or native == native_here
    ]


# -- render settings -----------------------------------------------------------------------
# EEVEE samples at which the dithered display converges to the blended result (each sample
# keeps or drops every Gaussian at random with its alpha): 28.0 dB against the backend on the
# dense test splat (tests/addon/test_display.py), 25.5 dB at the viewport's default 16.
DITHERED_SAMPLES = 64
# Cycles: a ray crosses one sphere per Gaussian it passes; layered splats need many transparent
# bounces, and Russian roulette (which stops dim paths at random) would only add noise.
CYCLES_TRANSPARENT_BOUNCES = 1024


def set_render_settings(scene: bpy.types.Scene) -> None:
    """EEVEE samples (renders and the viewport) and Cycles transparency for splats (the user's
    button, never automatic)."""
    eevee = scene.eevee
    eevee.taa_render_samples = max(eevee.taa_render_samples, DITHERED_SAMPLES)
    eevee.taa_samples = max(eevee.taa_samples, DITHERED_SAMPLES)
    set_cycles_transparency(scene)


def set_cycles_transparency(scene: bpy.types.Scene) -> None:
    cycles = getattr(scene, "cycles", None)
    if cycles is None:  # Cycles disabled
        return
    cycles.transparent_max_bounces = CYCLES_TRANSPARENT_BOUNCES
    cycles.min_transparent_bounces = CYCLES_TRANSPARENT_BOUNCES

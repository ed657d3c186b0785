"""Blender's own Gaussian splats (5.3+): a point cloud of type GAUSSIAN_SPLAT, drawn by Blender
in every engine and in Solid mode (importers/native.py fills it with Blender's attributes).

Blender takes the SH colour as sRGB, decodes it to linear light and composites that; the Standard
view then shows each Gaussian's own colour, but edges and thin layers blend in linear light, not
as 3DGS blends sRGB values. "Match the backend" (display.set_colours_match_backend) switches the
group's DISPLAY_REFERRED_NODE on: the evaluated DC coefficients are re-encoded so that the linear
light Blender decodes IS the sRGB colour, and under the Raw view Blender then composites exactly
what 3DGS composites (the stored attributes, and so exports, are untouched). Higher SH bands are
left as they are (exact for degree-0 splats such as the stereo prior's).

The display modifier on a native splat (NATIVE_GROUP_NAME) thins it in the viewport and adds
gsplat's screen blur (0.3 px^2) as an isotropic world variance b at each Gaussian's distance from
the scene camera: R S^2 R^T + b I = R (S^2 + b I) R^T, so each scale becomes sqrt(s^2 + b).
Without it, Gaussians smaller than a pixel leave holes that Blender's sampler hits only at
random (bench/viewport.py: 26.4 dB against the backend without it, 33.7 dB with it, Cycles at
16 samples on the sample scene).
"""

from __future__ import annotations

import bpy

from .attributes import SH_C0
from .material import current_group
from .modifier import INPUTS, GeometryBuilder, add_display_modifier, add_interface

NATIVE_TYPE = "GAUSSIAN_SPLAT"
NATIVE_GROUP_NAME = "VideoScene Native Splat Display"
NATIVE_INPUTS = {name: INPUTS[name] for name in ("Viewport Every", "Pixel Angle")}
DISPLAY_REFERRED_NODE = "display_referred"
BASE = "radiance:base"


def is_native_splat(obj: bpy.types.Object | None) -> bool:
    return (
        obj is not None
        and obj.type == "POINTCLOUD"
        and getattr(obj.data, "type", None) == NATIVE_TYPE  # PointCloud.type: 5.3+
    )


def native_group() -> bpy.types.NodeTree:
    """Viewport thinning and gsplat's screen blur for a native splat."""
    group = current_group(NATIVE_GROUP_NAME, "GeometryNodeTree")
    if group.nodes:
        return group
    add_interface(group, NATIVE_INPUTS)
    b = GeometryBuilder(group)
    given = b.node("NodeGroupInput")
    points = b.viewport_thinned(given.outputs["Geometry"], given.outputs["Viewport Every"])
    blur, _distance = b.screen_blur(b.scene_camera(), given.outputs["Pixel Angle"])
    scale = b.attribute("scale", "FLOAT_VECTOR")
    widened = b.vector("ADD", b.vector("MULTIPLY", scale, scale), b.combined(blur, blur, blur))
    axes = b.node("ShaderNodeSeparateXYZ", {0: widened})
    roots = [b.math("SQRT", axes.outputs[i]) for i in range(3)]
    points = b.store(points, "scale", b.combined(*roots), "FLOAT_VECTOR")
    points = _display_referred_radiance(b, points)
    b.links.new(points, b.node("NodeGroupOutput").inputs[0])
    return group


def _display_referred_radiance(b: GeometryBuilder, points):
    """DC coefficients whose colour, decoded from sRGB by Blender, gives back the sRGB colour
    itself (mixed in by the DISPLAY_REFERRED_NODE value, 0 or 1). GN reads and writes no FLOAT4,
    so "radiance:base" goes through as a colour (RGBA), which Blender's splats also read."""
    referred = b.node("ShaderNodeValue", name=DISPLAY_REFERRED_NODE, label="Display Referred")
    referred.outputs[0].default_value = 0.0
    base = b.node("FunctionNodeSeparateColor", {0: b.attribute(BASE, "FLOAT_COLOR")})
    channels = []
    for index in range(3):
        dc = base.outputs[index]
        colour = b.math("MAXIMUM", b.math("ADD", b.math("MULTIPLY", dc, SH_C0), 0.5), 0.0)
        encoded = _linear_to_srgb(b, colour)
        referred_dc = b.math("DIVIDE", b.math("SUBTRACT", encoded, 0.5), SH_C0)
        change = b.math("MULTIPLY", b.math("SUBTRACT", referred_dc, dc), referred.outputs[0])
        channels.append(b.math("ADD", dc, change))
    rgba = b.node(
        "FunctionNodeCombineColor",
        {0: channels[0], 1: channels[1], 2: channels[2], 3: base.outputs[3]},
    ).outputs[0]
    return b.store(points, BASE, rgba, "FLOAT_COLOR")


def _linear_to_srgb(b: GeometryBuilder, value):
    """The sRGB encoding curve (IEC 61966-2-1), which Blender's splats decode."""
    curve = b.math("SUBTRACT", b.math("MULTIPLY", b.math("POWER", value, 1.0 / 2.4), 1.055), 0.055)
    line = b.math("MULTIPLY", value, 12.92)
    below = b.math("LESS_THAN", value, 0.0031308)
    return b.math("ADD", curve, b.math("MULTIPLY", b.math("SUBTRACT", line, curve), below))


def show_native(obj: bpy.types.Object) -> bpy.types.Object:
    """Blender draws the splat; the display modifier matches the backend's screen blur."""
    add_display_modifier(obj, native_group())
    return obj

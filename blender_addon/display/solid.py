"""What Solid mode (Workbench) shows of a splat: its Gaussians as coloured octahedra.

Workbench draws a point cloud in one material's viewport colour (per-point material indices and
colour attributes do not reach point clouds on 4.2 or 5.0), but it draws a mesh face in the
viewport colour of the face's material, the default Solid colour type (MATERIAL). So each splat
gets a companion: a child mesh object whose Geometry Nodes read the splat's evaluated points
(Object Info, so the viewport density and the splat's transform follow with no Python) and put
one octahedron per Gaussian, its vertices along the Gaussian's axes, each face coloured from a
shared palette of PALETTE_LEVELS^3 materials (sRGB levels, as 3DGS blends colours).

The octahedron spans where the Gaussian's alpha along a ray through its centre reaches
SHOWN_ALPHA (sigma * sqrt(2 ln(opacity / SHOWN_ALPHA))); Gaussians that never reach it show
nothing, as Workbench draws opaque.

The companion is Solid mode only: camera, shadow and all other ray visibility off, and its
materials are transparent, so EEVEE and Cycles render nothing of it; the splat's own materials
get viewport alpha 0, so Workbench draws nothing of the points beneath. The companion holds no
splat data (its mesh is the unit octahedron holding the palette; splat finders look for the
"opacity" attribute), so exports and rebuilds read the splat as before. Cost: 6 vertices and 8
triangles per Gaussian shown (opacity over SHOWN_ALPHA), with 4 float vectors and a float per
vertex, built wherever the depsgraph evaluates the companion (EEVEE and Cycles renders too,
invisible there), again whenever the splat's display changes (it follows the scene camera).
keep_companions (called by a depsgraph handler) keeps each splat with one companion.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from .attributes import (
    COLOR_ATTRIBUTE,
    SRGB_ATTRIBUTE,
    VARIANCE_ATTRIBUTE,
    srgb_to_linear,
)
from .material import BLUR_ATTRIBUTE, current_group
from .modifier import GeometryBuilder, display_modifier, modifier_value, set_modifier_value
from .native import is_native_splat

GROUP_NAME = "VideoScene Solid Colours"
MODIFIER_NAME = "VideoScene Solid"
COMPANION_SUFFIX = " (Solid)"
PALETTE_PREFIX = "VideoScene Solid "
# Per channel: 343 shared materials. Each Gaussian takes the level below or above its sRGB value
# at random (in proportion to how close each is), so neighbouring Gaussians average to the
# true colour: smooth skies and walls show as a fine grain, not as bands or patches. Measured
# against the backend (test splat random / colour field; sample scene): 7 levels dithered
# 18.3 / 21.1, 27.4 dB; 6 rounded 18.3 / 21.1, 26.2; 6 dithered 18.1 / 20.7, 26.2; 8 dithered
# 18.4 / 21.4 dB.
PALETTE_LEVELS = 7
# Opaque faces stand for blended Gaussians: an octahedron out to where alpha reaches 1/4 (not
# 1/2 scaled up, nor 1/2 alone) measured best against the backend's render of the test splat
# (random colours / a colour field): 1/4 18.3 / 21.1 dB, 1/2 x1.7 17.2 / 19.5, 1/2 14.7 / 14.1,
# 1/5 18.2 / 21.9, 1/3 18.0 / 19.7 dB.
SHOWN_ALPHA = 0.25
ROTATION_ATTRIBUTE = "rotation"  # the splat's unit quaternion (importers/splat.py)
PALETTE_ATTRIBUTE = "solid_palette"
OCTAHEDRON_VERTICES = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
OCTAHEDRON_FACES = [
    (x, y, z) if (x + y + z) % 2 else (x, z, y) for x in (0, 1) for y in (2, 3) for z in (4, 5)
]


def solid_group() -> bpy.types.NodeTree:
    group = current_group(GROUP_NAME, "GeometryNodeTree")
    if group.nodes:
        return group
    interface = group.interface
    interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    socket = interface.new_socket("Splat", in_out="INPUT", socket_type="NodeSocketObject")
    socket.description = "The splat whose Gaussians Solid mode shows"
    interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    b = GeometryBuilder(group)
    given = b.node("NodeGroupInput")
    info = b.node(
        "GeometryNodeObjectInfo", {"Object": given.outputs["Splat"]}, transform_space="RELATIVE"
    )
    parts = b.node("GeometryNodeSeparateComponents", {0: info.outputs["Geometry"]})
    # a display that draws each Gaussian as a mesh face: one point per face, at its centre
    from_faces = b.node("GeometryNodeMeshToPoints", {"Mesh": parts.outputs["Mesh"]}, mode="FACES")
    join = b.node("GeometryNodeJoinGeometry")
    b.links.new(parts.outputs["Point Cloud"], join.inputs[0])
    b.links.new(from_faces.outputs["Points"], join.inputs[0])
    points = join.outputs[0]

    # Where alpha through the centre reaches SHOWN_ALPHA: sqrt(2 ln(opacity / SHOWN_ALPHA)) sigmas.
    rgba = b.node("FunctionNodeSeparateColor", {0: b.attribute(COLOR_ATTRIBUTE, "FLOAT_COLOR")})
    opacity = rgba.outputs["Alpha"]
    faint = b.node(
        "FunctionNodeCompare",
        {0: opacity, 1: SHOWN_ALPHA},
        data_type="FLOAT",
        operation="LESS_EQUAL",
    ).outputs[0]
    points = b.node(
        "GeometryNodeDeleteGeometry", {"Geometry": points, "Selection": faint}, domain="POINT"
    ).outputs[0]
    reach = b.math(
        "SQRT",
        b.math(
            "MULTIPLY",
            b.math("LOGARITHM", b.math("MULTIPLY", opacity, 1.0 / SHOWN_ALPHA), math.e),
            2.0,
        ),
    )
    variance = b.node("ShaderNodeSeparateXYZ", {0: b.attribute(VARIANCE_ATTRIBUTE, "FLOAT_VECTOR")})
    blur = b.attribute(BLUR_ATTRIBUTE, "FLOAT")
    sigmas = [b.math("SQRT", b.math("ADD", variance.outputs[i], blur)) for i in range(3)]
    spans = b.combined(*(b.math("MULTIPLY", sigma, reach) for sigma in sigmas))

    # Palette index from the sRGB colour, PALETTE_LEVELS levels a channel, dithered: the level
    # under value * (levels - 1) plus a random number in [0, 1) per Gaussian and channel.
    srgb = b.node("ShaderNodeSeparateXYZ", {0: b.attribute(SRGB_ATTRIBUTE, "FLOAT_VECTOR")})
    palette = None
    for channel in range(3):
        scaled = b.math("MULTIPLY", srgb.outputs[channel], PALETTE_LEVELS - 1)
        noise = b.random_float(seed=channel)
        level = b.math("FLOOR", b.math("ADD", scaled, noise))
        level = b.math("MINIMUM", b.math("MAXIMUM", level, 0.0), PALETTE_LEVELS - 1)
        term = b.math("MULTIPLY", level, float(PALETTE_LEVELS**channel))
        palette = term if palette is None else b.math("ADD", palette, term)

    # Fresh points that carry only what the octahedra need (the splat's own attributes, its
    # SH bands among them, would otherwise be copied onto every vertex).
    count = b.node("GeometryNodeAttributeDomainSize", {0: points}, component="POINTCLOUD")
    fresh = b.node("GeometryNodePoints", {"Count": count.outputs["Point Count"]}).outputs[0]

    def sampled(value, data_type: str):
        node = b.node(
            "GeometryNodeSampleIndex",
            {
                "Geometry": points,
                "Value": value,
                "Index": b.node("GeometryNodeInputIndex").outputs[0],
            },
            data_type=data_type,
            domain="POINT",
        )
        return node.outputs[0]

    position = b.node("GeometryNodeInputPosition").outputs[0]
    fresh = b.node(
        "GeometryNodeSetPosition",
        {"Geometry": fresh, "Position": sampled(position, "FLOAT_VECTOR")},
    ).outputs[0]

    # The companion's own mesh, a unit octahedron holding the palette, on each point, turned
    # by the Gaussian's rotation and scaled by its spans (so its vertices lie along the
    # Gaussian's axes), then realised (Workbench draws the evaluated mesh's materials: the
    # palette, in order). The palette index, stored on the instances, is all that realising
    # carries onto the vertices; it then sets each face's material.
    octahedron = given.outputs["Geometry"]
    instances = b.node(
        "GeometryNodeInstanceOnPoints",
        {
            "Points": fresh,
            "Instance": octahedron,
            "Rotation": sampled(b.attribute(ROTATION_ATTRIBUTE, "QUATERNION"), "QUATERNION"),
            "Scale": sampled(spans, "FLOAT_VECTOR"),
        },
    ).outputs[0]
    instances = b.store(
        instances, PALETTE_ATTRIBUTE, sampled(palette, "INT"), "INT", domain="INSTANCE"
    )
    mesh = b.node("GeometryNodeRealizeInstances", {"Geometry": instances}).outputs[0]
    mesh = b.node(
        "GeometryNodeSetMaterialIndex",
        {"Geometry": mesh, "Material Index": b.attribute(PALETTE_ATTRIBUTE, "INT")},
    ).outputs[0]
    b.links.new(mesh, b.node("NodeGroupOutput").inputs[0])
    return group


def palette_colours() -> np.ndarray:
    """(PALETTE_LEVELS^3, 3) sRGB colours, red fastest, as the node group indexes them."""
    levels = np.linspace(0.0, 1.0, PALETTE_LEVELS)
    blue, green, red = np.meshgrid(levels, levels, levels, indexing="ij")
    return np.stack([red.ravel(), green.ravel(), blue.ravel()], axis=1)


def palette_materials() -> list[bpy.types.Material]:
    """The shared palette: Workbench shows each one's viewport colour; EEVEE and Cycles see a
    Transparent BSDF (nothing)."""
    materials: list[bpy.types.Material] = []
    for srgb in palette_colours():
        red, green, blue = (round(value * (PALETTE_LEVELS - 1)) for value in srgb)
        name = f"{PALETTE_PREFIX}{red}{green}{blue}"
        material = bpy.data.materials.get(name)
        if material is None and materials:  # a copy is ten times faster than new nodes
            material = materials[0].copy()
            material.name = name
        material = material or _transparent_material(name)
        material.diffuse_color = (*srgb_to_linear(srgb).tolist(), 1.0)
        materials.append(material)
    return materials


def _transparent_material(name: str) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    transparent = nodes.new("ShaderNodeBsdfTransparent")
    material.node_tree.links.new(transparent.outputs[0], output.inputs["Surface"])
    material.surface_render_method = "DITHERED"
    material.roughness, material.metallic, material.specular_intensity = 1.0, 0.0, 0.0
    return material


def companion(splat: bpy.types.Object) -> bpy.types.Object | None:
    """The child whose Solid modifier shows `splat` (found by reference: renames keep it)."""
    for child in splat.children:
        modifier = child.modifiers.get(MODIFIER_NAME)
        shows = modifier is not None and modifier.type == "NODES" and modifier.node_group
        if shows and modifier_value(modifier, "Splat") == splat:
            return child
    return None


def add_solid_companion(splat: bpy.types.Object) -> bpy.types.Object:
    """The splat's Solid-mode companion (made once; follows the splat as its child)."""
    obj = companion(splat)
    if obj is None:
        mesh = bpy.data.meshes.new(splat.name + COMPANION_SUFFIX)
        mesh.from_pydata(OCTAHEDRON_VERTICES, [], OCTAHEDRON_FACES)
        obj = bpy.data.objects.new(mesh.name, mesh)
        for collection in splat.users_collection:
            collection.objects.link(obj)
        obj.parent = splat
    obj.data.materials.clear()
    for material in palette_materials():
        obj.data.materials.append(material)
    obj.hide_select = True  # clicks select the splat, not its Solid colours
    for ray in ("camera", "shadow", "diffuse", "glossy", "transmission", "volume_scatter"):
        setattr(obj, f"visible_{ray}", False)
    modifier = obj.modifiers.get(MODIFIER_NAME) or obj.modifiers.new(MODIFIER_NAME, "NODES")
    modifier.node_group = solid_group()
    set_modifier_value(modifier, "Splat", splat)
    return obj


def hide_in_workbench(material: bpy.types.Material) -> None:
    """Workbench draws nothing of a material with viewport alpha 0; EEVEE and Cycles never
    read the viewport colour."""
    material.diffuse_color = (*material.diffuse_color[:3], 0.0)


def _shown_splat(obj: bpy.types.Object) -> tuple[bool, bpy.types.Object | None]:
    """(whether obj is a Solid companion, the splat it shows)."""
    modifier = obj.modifiers.get(MODIFIER_NAME)
    if modifier is None or modifier.type != "NODES" or modifier.node_group is None:
        return False, None
    return True, modifier_value(modifier, "Splat")


def keep_companions(scene: bpy.types.Scene) -> int:
    """A Solid companion for each splat in the scene that has none (a Shift+D copy: the
    companion, a child that cannot be selected, is not copied with it), and none for a splat
    that is gone (deleted: the companion would stay as an empty object). Returns how many
    companions it added or removed. A companion is hidden when its splat is (H in the
    viewport, the eye or monitor toggles, Rebuild Scene hiding the prior): it is a child,
    which Blender does not hide with its parent. The depsgraph handler calls it after edits."""
    changed = 0
    for obj in list(scene.objects):
        is_companion, splat = _shown_splat(obj)
        if is_companion:
            if splat is None or scene.objects.get(splat.name) != splat:
                bpy.data.objects.remove(obj)
                changed += 1
            else:
                _follow_visibility(obj, splat)
        elif (
            display_modifier(obj) is not None
            and not is_native_splat(obj)  # Solid mode draws Blender's own splats in colour
            and companion(obj) is None
        ):
            _follow_visibility(add_solid_companion(obj), obj)
            changed += 1
    return changed


def _follow_visibility(shown: bpy.types.Object, splat: bpy.types.Object) -> None:
    # Written only when different: each write is an update, which calls the handler again.
    if shown.hide_viewport != splat.hide_viewport:
        shown.hide_viewport = splat.hide_viewport
    hidden = splat.hide_get()
    if shown.hide_get() != hidden:
        shown.hide_set(hidden)

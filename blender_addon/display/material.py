"""The Gaussian material: each point evaluates its 3D Gaussian exactly along the view ray.

In the Gaussian's own frame (the splat object's space, its axes, its sigmas) a view ray through
the shaded point P with direction V passes the centre C closest at squared Mahalanobis distance
    d^2 = p.p - (p.v)^2 / v.v,   p_i = a_i.(P - C) / sigma_i,   v_i = a_i.V / sigma_i
(a_i the Gaussian's unit axes), so the ray's alpha is min(ALPHA_MAX, opacity exp(-d^2 / 2)), the
same peak-along-the-ray value the backend composites. P and V come from Geometry (Position,
Incoming), C from the "gs_center" attribute (the display modifier's; a point's Point Info, but
the sorted display draws quads, which have none), all in world space and brought into the object's space by Vector
Transform; sigma_i^2 is widened by "gs_blur", the backend's screen-space blur that the display
modifier writes per point (display/modifier.py). The colour is emission (lights do not change it)
over a Transparent BSDF, so EEVEE and Cycles composite the Gaussians as the backend does.

Two materials share the node group: Dithered (EEVEE stochastic transparency, order-independent,
for the interactive viewport) and Blended (drawn in point order: the display modifier sorts the
Gaussians far to near for the scene camera and draws each as a quad facing it). No camera scripts and no per-frame Python.

Per point cost: EEVEE draws one camera-facing shape and evaluates this group on
every fragment inside it; the group reads 8 attributes (gs_color, gs_axis_x/y/z, gs_srgb,
gs_variance, gs_blur, gs_center). Dithered, Cycles intersects one sphere per point; sorted, one
quad (2 triangles) per point, in both engines.
"""

from __future__ import annotations

import bpy

from .attributes import AXIS_ATTRIBUTES, COLOR_ATTRIBUTE, SRGB_ATTRIBUTE, VARIANCE_ATTRIBUTE

GROUP_NAME = "VideoScene Gaussian"
DITHERED_MATERIAL = "VideoScene Splat"
SORTED_MATERIAL = "VideoScene Splat (Sorted)"
BLUR_ATTRIBUTE = "gs_blur"
CENTER_ATTRIBUTE = "gs_center"
TWO_SIDED_INPUT = "Two Sided"
DISPLAY_REFERRED_NODE = "display_referred"
# The backend's compositing limits (backend/render/torch_backend.py: ALPHA_MAX, ALPHA_MIN).
ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
# Workbench (Solid mode) shows a material's viewport colour; a mid grey if nothing better is set.
SOLID_GREY = (0.5, 0.5, 0.5, 1.0)


class _Builder:
    """Adds nodes and links to a node tree (keeps the graph code below readable)."""

    def __init__(self, tree: bpy.types.NodeTree) -> None:
        self.nodes, self.links = tree.nodes, tree.links

    def node(self, kind: str, **props):
        node = self.nodes.new(kind)
        for key, value in props.items():
            setattr(node, key, value)
        node.location = (180.0 * (len(self.nodes) % 12), -160.0 * (len(self.nodes) // 12))
        return node

    def link(self, output, node, index_or_name) -> None:
        self.links.new(output, node.inputs[index_or_name])

    def attribute(self, name: str):
        return self.node("ShaderNodeAttribute", attribute_name=name, attribute_type="GEOMETRY")

    def vector_math(self, operation: str, a, b=None, constant=None):
        node = self.node("ShaderNodeVectorMath", operation=operation)
        self.link(a, node, 0)
        if b is not None:
            self.link(b, node, 1)
        if constant is not None:
            node.inputs[1].default_value = constant
        return node.outputs["Value" if operation == "DOT_PRODUCT" else "Vector"]

    def math(self, operation: str, a, b=None, constant: float | None = None):
        node = self.node("ShaderNodeMath", operation=operation)
        if isinstance(a, float):
            node.inputs[0].default_value = a
        else:
            self.link(a, node, 0)
        if b is not None:
            self.link(b, node, 1)
        if constant is not None:
            node.inputs[1].default_value = constant
        return node.outputs[0]

    def to_object(self, vector, vector_type: str = "VECTOR"):
        node = self.node(
            "ShaderNodeVectorTransform",
            vector_type=vector_type,
            convert_from="WORLD",
            convert_to="OBJECT",
        )
        self.link(vector, node, 0)
        return node.outputs[0]

    def in_axes(self, vector, axes):
        """The vector's components along the Gaussian's three axes."""
        combine = self.node("ShaderNodeCombineXYZ")
        for index, axis in enumerate(axes):
            self.link(self.vector_math("DOT_PRODUCT", vector, axis), combine, index)
        return combine.outputs[0]


# Raised when a group's graph changes, so a file saved by an older add-on is rebuilt in place.
GROUPS_VERSION = 4  # 4: the Solid companion from instance transforms; native splats
VERSION_KEY = "videoscene_version"


def current_group(name: str, kind: str) -> bpy.types.NodeTree:
    """The node group `name` of this add-on's version: empty if it must be (re)built. A group
    of an older version is emptied in place, so materials and modifiers using it follow."""
    group = bpy.data.node_groups.get(name)
    if group is not None and group.bl_idname == kind:
        if group.get(VERSION_KEY) == GROUPS_VERSION:
            return group
        group.nodes.clear()
        group.interface.clear()
    else:
        group = bpy.data.node_groups.new(name, kind)
    group[VERSION_KEY] = GROUPS_VERSION
    return group


def gaussian_group() -> bpy.types.NodeTree:
    """The shader node group (shared by every splat material): Shader out."""
    group = current_group(GROUP_NAME, "ShaderNodeTree")
    if group.nodes:
        return group
    group.interface.new_socket("Shader", in_out="OUTPUT", socket_type="NodeSocketShader")
    # 0: spheres (Cycles meets each twice: the exit must not count), 1: quads (met once)
    group.interface.new_socket(TWO_SIDED_INPUT, in_out="INPUT", socket_type="NodeSocketFloat")
    b = _Builder(group)
    given = b.node("NodeGroupInput")
    geometry = b.node("ShaderNodeNewGeometry")
    offset = b.vector_math(
        "SUBTRACT",
        b.to_object(geometry.outputs["Position"], "POINT"),
        b.node(
            "ShaderNodeAttribute", attribute_name=CENTER_ATTRIBUTE, attribute_type="GEOMETRY"
        ).outputs["Vector"],
    )
    direction = b.to_object(geometry.outputs["Incoming"])
    axes = [b.attribute(name).outputs["Vector"] for name in AXIS_ATTRIBUTES]
    p = b.in_axes(offset, axes)
    v = b.in_axes(direction, axes)
    # variance + blur: the float blur becomes (blur, blur, blur) on the vector input
    variance = b.vector_math(
        "ADD",
        b.attribute(VARIANCE_ATTRIBUTE).outputs["Vector"],
        b.attribute(BLUR_ATTRIBUTE).outputs["Fac"],
    )

    def weighted_dot(x, y):  # sum_i x_i y_i / variance_i
        product = b.vector_math("DIVIDE", b.vector_math("MULTIPLY", x, y), variance)
        return b.vector_math("DOT_PRODUCT", product, constant=(1.0, 1.0, 1.0))

    pp, pv, vv = weighted_dot(p, p), weighted_dot(p, v), weighted_dot(v, v)
    d2 = b.math("SUBTRACT", pp, b.math("DIVIDE", b.math("MULTIPLY", pv, pv), vv))
    falloff = b.math("EXPONENT", b.math("MULTIPLY", d2, constant=-0.5))
    color = b.attribute(COLOR_ATTRIBUTE)
    # Display-referred (the backend's sRGB values, for the Raw view) or linear light.
    display_referred = b.node(
        "ShaderNodeValue", name=DISPLAY_REFERRED_NODE, label="Display Referred"
    )
    display_referred.outputs[0].default_value = 0.0
    emitted = b.node("ShaderNodeMix", data_type="RGBA", blend_type="MIX")
    b.link(display_referred.outputs[0], emitted, 0)
    b.link(color.outputs["Color"], emitted, 6)
    b.link(b.attribute(SRGB_ATTRIBUTE).outputs["Color"], emitted, 7)
    alpha = b.math(
        "MINIMUM", b.math("MULTIPLY", falloff, color.outputs["Alpha"]), constant=ALPHA_MAX
    )
    alpha = b.math("MULTIPLY", alpha, b.math("GREATER_THAN", alpha, constant=ALPHA_MIN))
    # Cycles draws spheres: a ray leaving one must not count the Gaussian twice.
    one_sided = b.math(
        "MULTIPLY", geometry.outputs["Backfacing"], b.math("SUBTRACT", 1.0, given.outputs[0])
    )
    alpha = b.math("MULTIPLY", alpha, b.math("SUBTRACT", 1.0, one_sided))
    emission = b.node("ShaderNodeEmission")
    b.link(emitted.outputs[2], emission, "Color")
    emission.inputs["Strength"].default_value = 1.0
    mix = b.node("ShaderNodeMixShader")
    b.link(alpha, mix, 0)
    b.link(b.node("ShaderNodeBsdfTransparent").outputs[0], mix, 1)
    b.link(emission.outputs[0], mix, 2)
    output = b.node("NodeGroupOutput")
    b.link(mix.outputs[0], output, 0)
    return group


def _gaussian_group_node(material: bpy.types.Material) -> bpy.types.Node | None:
    tree = material.node_tree
    for node in tree.nodes if tree is not None else ():
        if (
            node.type == "GROUP"
            and node.node_tree is not None
            and node.node_tree.name == GROUP_NAME
        ):
            return node
    return None


def _uses_gaussian_group(material: bpy.types.Material) -> bool:
    return _gaussian_group_node(material) is not None


def gaussian_material(sorted_order: bool) -> bpy.types.Material:
    """The Dithered or the Blended (sorted) splat material, made once per file."""
    name = SORTED_MATERIAL if sorted_order else DITHERED_MATERIAL
    material = bpy.data.materials.get(name)
    if material is not None and _uses_gaussian_group(material):
        gaussian_group()  # an older file's group is rebuilt, with this input
        _gaussian_group_node(material).inputs[TWO_SIDED_INPUT].default_value = float(sorted_order)
        return material
    # A file from an older add-on keeps its sphere material under this name: rebuilt in place.
    material = material or bpy.data.materials.new(name)
    if material.node_tree is None:  # before 5.0 new materials have no node tree yet
        material.use_nodes = True
    material.node_tree.nodes.clear()
    b = _Builder(material.node_tree)
    group = b.node("ShaderNodeGroup")
    group.node_tree = gaussian_group()
    group.inputs[TWO_SIDED_INPUT].default_value = float(sorted_order)
    output = b.node("ShaderNodeOutputMaterial")
    b.link(group.outputs[0], output, "Surface")
    # EEVEE (4.2+): dithered = stochastic, order-independent; blended = alpha over, point order.
    material.surface_render_method = "BLENDED" if sorted_order else "DITHERED"
    material.use_transparency_overlap = True  # every Gaussian of the object, not the front one
    material.use_transparent_shadow = True
    material.diffuse_color = SOLID_GREY
    return material

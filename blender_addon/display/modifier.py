"""The display modifier: one Geometry Nodes group on every splat object the add-on draws.

A mesh (files of add-ons before 4.5 support) -> Mesh to Points; a point cloud passes through. Then:
- viewport density: in the viewport only every k-th Gaussian is kept (renders keep all);
- "gs_blur" per point: the backend's screen blur (gsplat's eps2d, 0.3 px^2 added to each
  projected covariance) as a world variance at the point's distance d from the scene camera,
  0.3 (d * pixel angle)^2, where the pixel angle (the camera's radians per pixel) is driven
  from the scene camera's lens, sensor and fit and the render resolution;
- the radius widened to cover that blur;
- "gs_center": each Gaussian's centre, which the material reads (a quad has no Point Info);
- order: with "Sorted" on, the points in front of the scene camera are sorted far to near by
  their depth along its axis (Sort Elements, the backend's sort key), each becomes a quad
  parallel to the camera's image plane through its centre (2 triangles, 4 vertices), and they
  get the Blended material; otherwise points with the Dithered one.
The camera is the scene's active camera, read relative to the splat (Object Info, Relative), so
the sort follows it frame by frame with no Python.
"""

from __future__ import annotations

import math

import bpy

from .. import compat
from .attributes import RADIUS_SIGMAS, VARIANCE_ATTRIBUTE
from .material import BLUR_ATTRIBUTE, CENTER_ATTRIBUTE, current_group, gaussian_material

GROUP_NAME = "VideoScene Splat Display"
MODIFIER_NAME = "VideoScene Display"
# gsplat's near plane (backend/render/torch_backend.py NEAR_PLANE): nothing nearer is drawn.
NEAR_PLANE = 0.01
# Quads a little larger than the bound needs: a ray close to a near Gaussian meets its plane
# at a wider angle than the one to its centre.
QUAD_MARGIN = 1.1
SCREEN_BLUR_PX2 = 0.3  # gsplat's eps2d (backend/render/torch_backend.py SCREEN_BLUR_PX2)
# Modifier inputs: name -> (socket type, default, min, max, tooltip)
INPUTS = {
    "Sorted": ("NodeSocketBool", False, None, None, "Sort for the scene camera, blended"),
    "Viewport Every": ("NodeSocketInt", 1, 1, 1000, "Show every k-th Gaussian in the viewport"),
    "Pixel Angle": ("NodeSocketFloat", 0.001, 0.0, 1.0, "Radians per pixel of the camera"),
}
# The pixel angle of the scene camera under each sensor fit (sensor_fit reads as its index:
# 0 Auto, the sensor width across the larger side; 1 Horizontal, across the width; 2 Vertical,
# the sensor height across the height), as a driver's simple expression (evaluated without
# Python, so it works where scripts may not auto-run).
PIXEL_ANGLE_EXPRESSION = (
    "(sensor if fit < 2 else sensor_h) / (lens * percent / 100 * "
    "(max(res_x, res_y) if fit == 0 else (res_x if fit == 1 else res_y)))"
)
PIXEL_ANGLE_VARIABLES = {
    "fit": "camera.data.sensor_fit",
    "sensor": "camera.data.sensor_width",
    "sensor_h": "camera.data.sensor_height",
    "lens": "camera.data.lens",
    "res_x": "render.resolution_x",
    "res_y": "render.resolution_y",
    "percent": "render.resolution_percentage",
}


class GeometryBuilder:
    """Adds Geometry Nodes and links to a node group (display and Solid graphs)."""

    def __init__(self, tree: bpy.types.NodeTree) -> None:
        self.nodes, self.links = tree.nodes, tree.links

    def node(self, kind: str, inputs: dict | None = None, **props):
        node = self.nodes.new(kind)
        for key, value in props.items():
            setattr(node, key, value)
        for key, value in (inputs or {}).items():
            if isinstance(value, bpy.types.NodeSocket):
                self.links.new(value, node.inputs[key])
            else:
                node.inputs[key].default_value = value
        node.location = (200.0 * (len(self.nodes) % 10), -180.0 * (len(self.nodes) // 10))
        return node

    def math(self, operation: str, a, b=None):
        inputs = {0: a} if b is None else {0: a, 1: b}
        return self.node("ShaderNodeMath", inputs, operation=operation).outputs[0]

    def vector(self, operation: str, a, b):
        node = self.node("ShaderNodeVectorMath", {0: a, 1: b}, operation=operation)
        return node.outputs["Value" if operation == "DOT_PRODUCT" else "Vector"]

    def scaled(self, vector, scale):
        node = self.node("ShaderNodeVectorMath", {0: vector, "Scale": scale}, operation="SCALE")
        return node.outputs["Vector"]

    def attribute(self, name: str, data_type: str):
        node = self.node("GeometryNodeInputNamedAttribute", {"Name": name}, data_type=data_type)
        return node.outputs["Attribute"]

    @staticmethod
    def shown(sockets, name: str):
        """The socket `name` that the node's current type uses: before 5.2 a node holds one
        socket of each type under the same name and hides the unused ones; from 5.2 it has
        only the used ones."""
        return next(s for s in sockets if s.name == name and s.enabled and not s.is_unavailable)

    def random_float(self, seed: int):
        """A random value in [0, 1) per element, from `seed`."""
        node = self.node("FunctionNodeRandomValue", {"Seed": seed}, data_type="FLOAT")
        self.shown(node.inputs, "Min").default_value = 0.0
        self.shown(node.inputs, "Max").default_value = 1.0
        return self.shown(node.outputs, "Value")

    def combined(self, x, y, z):
        return self.node("ShaderNodeCombineXYZ", {0: x, 1: y, 2: z}).outputs[0]

    def viewport_thinned(self, points, every):
        """Drop the points whose index is not a multiple of `every`, in the viewport only."""
        index = self.node("GeometryNodeInputIndex").outputs[0]
        skipped = self.node(
            "FunctionNodeCompare",
            {0: self.math("FLOORED_MODULO", index, every), 1: 0.0},
            data_type="FLOAT",
            operation="NOT_EQUAL",
        ).outputs[0]
        drop = self.node(
            "FunctionNodeBooleanMath",
            {0: skipped, 1: self.node("GeometryNodeIsViewport").outputs[0]},
            operation="AND",
        ).outputs[0]
        return self.node(
            "GeometryNodeDeleteGeometry", {"Geometry": points, "Selection": drop}, domain="POINT"
        ).outputs[0]

    def screen_blur(self, camera_info, pixel_angle):
        """(gsplat's screen blur as a world variance at each point, the point's distance to
        the scene camera): 0.3 (distance * pixel angle)^2."""
        position = self.node("GeometryNodeInputPosition").outputs[0]
        distance = self.node(
            "ShaderNodeVectorMath",
            {0: position, 1: camera_info.outputs["Location"]},
            operation="DISTANCE",
        ).outputs["Value"]
        footprint = self.math("MULTIPLY", distance, pixel_angle)
        blur = self.math("MULTIPLY", self.math("MULTIPLY", footprint, footprint), SCREEN_BLUR_PX2)
        return blur, distance

    def scene_camera(self):
        """Object Info of the scene's active camera, relative to the modified object."""
        camera = self.node("GeometryNodeInputActiveCamera").outputs[0]
        return self.node("GeometryNodeObjectInfo", {"Object": camera}, transform_space="RELATIVE")

    def store(self, geometry, name: str, value, data_type: str, domain: str = "POINT"):
        inputs = {"Geometry": geometry, "Name": name, "Value": value}
        node = self.node(
            "GeometryNodeStoreNamedAttribute", inputs, data_type=data_type, domain=domain
        )
        return node.outputs[0]


def add_interface(group: bpy.types.NodeTree, inputs: dict) -> None:
    """A geometry in and out, and the named inputs (INPUTS' layout)."""
    interface = group.interface
    interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    for name, (kind, default, low, high, tip) in inputs.items():
        socket = interface.new_socket(name, in_out="INPUT", socket_type=kind)
        socket.default_value, socket.description = default, tip
        if low is not None:
            socket.min_value, socket.max_value = low, high
    interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")


def display_group() -> bpy.types.NodeTree:
    group = current_group(GROUP_NAME, "GeometryNodeTree")
    if group.nodes:
        return group
    add_interface(group, INPUTS)
    b = GeometryBuilder(group)
    given = b.node("NodeGroupInput")
    parts = b.node("GeometryNodeSeparateComponents", {0: given.outputs["Geometry"]})
    from_mesh = b.node("GeometryNodeMeshToPoints", {"Mesh": parts.outputs["Mesh"]}, mode="VERTICES")
    join = b.node("GeometryNodeJoinGeometry")
    b.links.new(parts.outputs["Point Cloud"], join.inputs[0])
    b.links.new(from_mesh.outputs["Points"], join.inputs[0])
    points = join.outputs[0]

    points = b.viewport_thinned(points, given.outputs["Viewport Every"])

    # Screen blur and radius from the distance to the scene camera (in the splat's space).
    camera_info = b.scene_camera()
    position = b.node("GeometryNodeInputPosition").outputs[0]
    blur, distance = b.screen_blur(camera_info, given.outputs["Pixel Angle"])
    points = b.store(points, BLUR_ATTRIBUTE, blur, "FLOAT")
    variance = b.attribute(VARIANCE_ATTRIBUTE, "FLOAT_VECTOR")
    axes = b.node("ShaderNodeSeparateXYZ", {0: variance})
    widest = b.math("MAXIMUM", b.math("MAXIMUM", axes.outputs[0], axes.outputs[1]), axes.outputs[2])
    sigma = b.math("SQRT", b.math("ADD", widest, blur))
    radius = b.math("MULTIPLY", sigma, RADIUS_SIGMAS)
    points = b.node("GeometryNodeSetPointRadius", {"Points": points, "Radius": radius}).outputs[0]

    points = b.store(points, CENTER_ATTRIBUTE, position, "FLOAT_VECTOR")

    # Order and material. Sorted: far to near by depth along the camera's axis (the backend's
    # sort key), each Gaussian drawn as a quad parallel to the camera's image plane through its
    # centre, so Cycles' rays also meet the Gaussians in exactly that order (a sphere is entered
    # at its radius, which reorders neighbours of different sizes).
    forward = b.node(
        "FunctionNodeRotateVector",
        {"Vector": (0.0, 0.0, -1.0), "Rotation": camera_info.outputs["Rotation"]},
    ).outputs[0]
    to_point = b.node(
        "ShaderNodeVectorMath",
        {0: position, 1: camera_info.outputs["Location"]},
        operation="SUBTRACT",
    ).outputs["Vector"]
    depth = b.node(
        "ShaderNodeVectorMath", {0: to_point, 1: forward}, operation="DOT_PRODUCT"
    ).outputs["Value"]
    behind = b.node(
        "FunctionNodeCompare", {0: depth, 1: NEAR_PLANE}, data_type="FLOAT", operation="LESS_EQUAL"
    ).outputs[0]
    unseen = b.node(
        "FunctionNodeBooleanMath", {0: behind, 1: given.outputs["Sorted"]}, operation="AND"
    ).outputs[0]
    points = b.node(
        "GeometryNodeDeleteGeometry", {"Geometry": points, "Selection": unseen}, domain="POINT"
    ).outputs[0]
    points = b.node(
        "GeometryNodeSortElements",
        {
            "Geometry": points,
            "Selection": given.outputs["Sorted"],
            "Sort Weight": b.math("MULTIPLY", depth, -1.0),
        },
        domain="POINT",
    ).outputs[0]
    # The quad holds every ray that passes within the radius of the centre: a ray at angle
    # theta off the camera axis crosses the quad's plane up to radius / cos(theta) from it.
    half_size = b.math(
        "MULTIPLY",
        b.math(
            "MULTIPLY", radius, b.math("DIVIDE", distance, b.math("MAXIMUM", depth, NEAR_PLANE))
        ),
        QUAD_MARGIN,
    )
    quad = b.node(
        "GeometryNodeMeshGrid", {"Size X": 2.0, "Size Y": 2.0, "Vertices X": 2, "Vertices Y": 2}
    ).outputs["Mesh"]
    quads = b.node(
        "GeometryNodeInstanceOnPoints",
        {
            "Points": points,
            "Instance": quad,
            "Rotation": camera_info.outputs["Rotation"],
            "Scale": b.node("ShaderNodeCombineXYZ", {0: half_size, 1: half_size, 2: 1.0}).outputs[
                0
            ],
        },
    ).outputs[0]
    quads = b.node("GeometryNodeRealizeInstances", {"Geometry": quads}).outputs[0]
    shapes = b.node(
        "GeometryNodeSwitch",
        {"Switch": given.outputs["Sorted"], "False": points, "True": quads},
        input_type="GEOMETRY",
    ).outputs[0]
    material = b.node(
        "GeometryNodeSwitch",
        {
            "Switch": given.outputs["Sorted"],
            "False": gaussian_material(sorted_order=False),
            "True": gaussian_material(sorted_order=True),
        },
        input_type="MATERIAL",
    ).outputs[0]
    points = b.node("GeometryNodeSetMaterial", {"Geometry": shapes, "Material": material}).outputs[
        0
    ]
    b.links.new(points, b.node("NodeGroupOutput").inputs[0])
    return group


def input_identifier(modifier: bpy.types.Modifier, name: str) -> str:
    """The modifier's key for the group input `name` (identifiers differ between versions)."""
    for item in modifier.node_group.interface.items_tree:
        if getattr(item, "in_out", None) == "INPUT" and item.name == name:
            return item.identifier
    raise KeyError(name)


def display_modifier(obj: bpy.types.Object) -> bpy.types.Modifier | None:
    modifier = obj.modifiers.get(MODIFIER_NAME)
    return modifier if modifier is not None and modifier.type == "NODES" else None


def add_display_modifier(
    obj: bpy.types.Object, group: bpy.types.NodeTree | None = None
) -> bpy.types.Modifier:
    """The display modifier with `group` (the add-on's display unless given), its pixel angle
    driven from the scene camera."""
    modifier = display_modifier(obj) or obj.modifiers.new(MODIFIER_NAME, "NODES")
    modifier.node_group = group or display_group()
    _drive_pixel_angle(obj, modifier)
    return modifier


def has_input(obj: bpy.types.Object, name: str) -> bool:
    modifier = display_modifier(obj)
    if modifier is None or modifier.node_group is None:
        return False
    try:
        input_identifier(modifier, name)
    except KeyError:
        return False
    return True


def _drive_pixel_angle(obj: bpy.types.Object, modifier: bpy.types.Modifier) -> None:
    path = compat.modifier_input_path(modifier, input_identifier(modifier, "Pixel Angle"))
    obj.driver_remove(path)
    driver = obj.driver_add(path).driver
    driver.type = "SCRIPTED"
    for name, data_path in PIXEL_ANGLE_VARIABLES.items():
        variable = driver.variables.new()
        variable.name, variable.type = name, "SINGLE_PROP"
        variable.targets[0].id_type = "SCENE"
        variable.targets[0].id = bpy.context.scene
        variable.targets[0].data_path = data_path
    driver.expression = PIXEL_ANGLE_EXPRESSION


def modifier_value(modifier: bpy.types.Modifier, name: str):
    """The value of the group input `name` on a nodes modifier."""
    return compat.get_modifier_input(modifier, input_identifier(modifier, name))


def set_modifier_value(modifier: bpy.types.Modifier, name: str, value) -> None:
    compat.set_modifier_input(modifier, input_identifier(modifier, name), value)


def set_input(obj: bpy.types.Object, name: str, value) -> None:
    set_modifier_value(display_modifier(obj), name, value)
    obj.update_tag()


def get_input(obj: bpy.types.Object, name: str):
    return modifier_value(display_modifier(obj), name)


def pixel_angle(scene: bpy.types.Scene) -> float:
    """What the driver computes, for tests and the panel."""
    camera, render = scene.camera.data, scene.render
    scale = render.resolution_percentage / 100
    if camera.sensor_fit == "VERTICAL":
        sensor, size = camera.sensor_height, render.resolution_y * scale
    elif camera.sensor_fit == "HORIZONTAL":
        sensor, size = camera.sensor_width, render.resolution_x * scale
    else:
        sensor, size = camera.sensor_width, max(render.resolution_x, render.resolution_y) * scale
    return sensor / (camera.lens * size) if math.isfinite(camera.lens) else 0.0

"""Ground-truth scenes for bench/prior_quality.py, rendered with Blender as a module (bpy).

Run in its own process (bpy and torch each bundle native libraries):
    python bench/gt_scenes.py OUT_DIR [SCENE ...]
For each scene it writes OUT_DIR/<scene>/{a,b,c}.png (Cycles, 640x480), {a,b,c}_depth.npy
(camera z-depth per pixel, float32, 0 where the ray hits nothing, i.e. the sky) and
cameras.json (each camera's Blender matrix_world, lens and sensor width). Views a and b are
the stereo pair; c is held out. The depth is a second Cycles render of the same view with every
material replaced by an emission of the camera's View Z Depth, a pixel filter of 0.01 px (so
depths are not blended across edges) and written as a 32-bit float EXR: it needs no compositor,
whose Python API differs between Blender versions.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import bpy
import numpy as np

SIZE = (640, 480)
SAMPLES = 12  # with Cycles' denoiser; the shared 2-core machine renders slowly
LENS_MM, SENSOR_MM = 26.0, 36.0


def material(
    name: str,
    kind: str,
    scale: float,
    colour_a,
    colour_b,
    fine: float,
    mosaic: bool = False,
    distortion: float = 0.0,
    upright: bool = False,
) -> bpy.types.Material:
    """A Principled BSDF whose base colour is a two-colour ramp over a procedural texture, with
    noise of `fine` cycles per metre overlaid so that every surface has texture at the pixel
    scale (`mosaic`: Voronoi cells of random colours instead, whose sharp borders survive the
    denoiser). Both textures read world-space positions, so scales are per metre whatever the
    object's size. `distortion` bends a wave texture's bands (wood grain rather than stripes).
    `upright`: the main texture reads (x, z, y), for a wall facing y: brick and wave textures
    vary in their first two coordinates only, so on such a wall they would show stripes."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    shader = nodes["Principled BSDF"]
    shader.inputs["Roughness"].default_value = 0.8
    texture = nodes.new(
        {
            "noise": "ShaderNodeTexNoise",
            "checker": "ShaderNodeTexChecker",
            "voronoi": "ShaderNodeTexVoronoi",
            "brick": "ShaderNodeTexBrick",
            "wave": "ShaderNodeTexWave",
        }[kind]
    )
    texture.inputs["Scale"].default_value = scale
    if kind == "wave":
        texture.inputs["Distortion"].default_value = distortion
    position = nodes.new("ShaderNodeNewGeometry").outputs["Position"]
    if upright:
        separate = nodes.new("ShaderNodeSeparateXYZ")
        combine = nodes.new("ShaderNodeCombineXYZ")
        links.new(position, separate.inputs[0])
        for source, target in (("X", "X"), ("Z", "Y"), ("Y", "Z")):
            links.new(separate.outputs[source], combine.inputs[target])
        links.new(combine.outputs[0], texture.inputs["Vector"])
    else:
        links.new(position, texture.inputs["Vector"])
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*colour_a, 1)
    ramp.color_ramp.elements[1].color = (*colour_b, 1)
    factor = texture.outputs["Distance"] if kind == "voronoi" else texture.outputs["Fac"]
    links.new(factor, ramp.inputs["Fac"])
    detail = nodes.new("ShaderNodeTexVoronoi" if mosaic else "ShaderNodeTexNoise")
    detail.inputs["Scale"].default_value = fine
    if not mosaic:
        detail.inputs["Detail"].default_value = 4.0
    links.new(position, detail.inputs["Vector"])
    mix = nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "OVERLAY"
    mix.inputs["Factor"].default_value = 0.45
    links.new(ramp.outputs["Color"], mix.inputs[6])
    links.new(detail.outputs["Color"], mix.inputs[7])
    links.new(mix.outputs[2], shader.inputs["Base Color"])
    return mat


def add(op, mat: bpy.types.Material, scale=(1.0, 1.0, 1.0), **kwargs) -> bpy.types.Object:
    op(**kwargs)
    obj = bpy.context.object
    obj.scale = scale  # set on the object: the operators' own scale argument is not applied here
    obj.data.materials.append(mat)
    return obj


def world(colour_top, colour_horizon, clouds: bool, strength: float) -> None:
    """A sky: a vertical gradient, optionally with noise clouds."""
    w = bpy.data.worlds.new("world")
    w.use_nodes = True
    nodes, links = w.node_tree.nodes, w.node_tree.links
    coords = nodes.new("ShaderNodeTexCoord")
    separate = nodes.new("ShaderNodeSeparateXYZ")
    links.new(coords.outputs["Generated"], separate.inputs[0])
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*colour_horizon, 1)
    ramp.color_ramp.elements[1].color = (*colour_top, 1)
    ramp.color_ramp.elements[1].position = 0.35
    links.new(separate.outputs["Z"], ramp.inputs["Fac"])
    colour = ramp.outputs["Color"]
    if clouds:
        noise = nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = 4.0
        noise.inputs["Detail"].default_value = 6.0
        links.new(coords.outputs["Generated"], noise.inputs["Vector"])
        mix = nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.blend_type = "SCREEN"
        mix.inputs["Factor"].default_value = 0.6
        links.new(colour, mix.inputs[6])
        links.new(noise.outputs["Fac"], mix.inputs[7])
        colour = mix.outputs[2]
    background = nodes["Background"]
    background.inputs["Strength"].default_value = strength
    links.new(colour, background.inputs["Color"])
    bpy.context.scene.world = w


def sun(energy: float, rotation=(0.7, 0.2, 0.5)) -> None:
    bpy.ops.object.light_add(type="SUN", rotation=rotation)
    bpy.context.object.data.energy = energy


def indoor_room() -> dict:
    """A 6 x 5 x 3 m room seen from one end: floor, walls, ceiling, furniture, lamp light."""
    floor = material(
        "floor", "voronoi", 3.0, (0.3, 0.18, 0.1), (0.8, 0.65, 0.45), 15.0, mosaic=True
    )
    wall = material("wall", "noise", 3.0, (0.3, 0.35, 0.5), (0.9, 0.85, 0.75), 15.0, mosaic=True)
    wall2 = material(
        "wall2", "voronoi", 2.0, (0.45, 0.25, 0.25), (0.9, 0.8, 0.7), 15.0, mosaic=True
    )
    wood = material("wood", "noise", 6.0, (0.3, 0.15, 0.05), (0.7, 0.45, 0.2), 15.0, mosaic=True)
    fabric = material(
        "fabric", "checker", 10.0, (0.1, 0.2, 0.5), (0.8, 0.8, 0.9), 15.0, mosaic=True
    )
    plant = material(
        "plant", "voronoi", 12.0, (0.05, 0.3, 0.05), (0.5, 0.9, 0.4), 15.0, mosaic=True
    )
    add(bpy.ops.mesh.primitive_plane_add, floor, size=1, scale=(6, 10, 1), location=(0, 0, 0))
    add(bpy.ops.mesh.primitive_plane_add, wall, size=1, location=(0, 0, 3), scale=(6, 10, 1))
    for x, mat in ((-3, wall), (3, wall2)):
        add(
            bpy.ops.mesh.primitive_plane_add,
            mat,
            size=1,
            location=(x, 0, 1.5),
            rotation=(0, math.pi / 2, 0),
            scale=(3, 10, 1),
        )
    add(
        bpy.ops.mesh.primitive_plane_add,
        wall2,
        size=1,
        location=(0, 5, 1.5),
        rotation=(math.pi / 2, 0, 0),
        scale=(6, 3, 1),
    )
    add(
        bpy.ops.mesh.primitive_cube_add,
        wood,
        size=1,
        location=(-1.2, 2.5, 0.4),
        scale=(1.6, 0.8, 0.8),
    )
    add(
        bpy.ops.mesh.primitive_cube_add,
        fabric,
        size=1,
        location=(1.6, 3.6, 0.5),
        scale=(1.2, 1.4, 1.0),
    )
    add(
        bpy.ops.mesh.primitive_cylinder_add, wood, radius=0.45, depth=0.9, location=(0.6, 1.2, 0.45)
    )
    add(bpy.ops.mesh.primitive_uv_sphere_add, plant, radius=0.45, location=(-2.2, 4.0, 1.2))
    add(
        bpy.ops.mesh.primitive_cube_add,
        fabric,
        size=0.5,
        location=(0.2, 3.0, 0.25),
        rotation=(0, 0, 0.6),
    )
    bpy.ops.object.light_add(type="POINT", location=(0.5, 1.5, 2.2))
    bpy.context.object.data.energy = 80.0
    bpy.ops.object.light_add(type="POINT", location=(-1.5, -3.0, 2.2))
    bpy.context.object.data.energy = 60.0
    world((0.1, 0.1, 0.1), (0.1, 0.1, 0.1), clouds=False, strength=0.3)
    return {
        "a": ((-0.45, -4.2, 1.5), (0.0, 3.0, 0.9)),
        "b": ((0.0, -4.15, 1.55), (0.2, 3.0, 0.9)),
        "c": ((0.35, -3.4, 1.75), (0.5, 3.0, 0.8)),
    }


def outdoor_sky() -> dict:
    """A street-like scene: textured ground, houses 8-40 m away, far hills, a cloudy sky."""
    ground = material("ground", "voronoi", 2.0, (0.25, 0.25, 0.2), (0.6, 0.55, 0.45), 20.0)
    brick = material("brick", "brick", 3.0, (0.5, 0.15, 0.1), (0.85, 0.75, 0.6), 20.0)
    plaster = material("plaster", "noise", 2.0, (0.7, 0.65, 0.5), (0.95, 0.9, 0.8), 20.0)
    tree = material("tree", "voronoi", 8.0, (0.05, 0.25, 0.05), (0.35, 0.6, 0.2), 20.0)
    hill = material("hill", "noise", 0.05, (0.2, 0.35, 0.2), (0.45, 0.55, 0.35), 0.5)
    add(bpy.ops.mesh.primitive_plane_add, ground, size=120, location=(0, 40, 0))
    for x, y, w, d, h, mat in (
        (-6, 14, 4, 4, 5, brick),
        (4, 18, 5, 4, 7, plaster),
        (-12, 30, 6, 5, 9, plaster),
        (12, 38, 8, 6, 12, brick),
    ):
        add(bpy.ops.mesh.primitive_cube_add, mat, size=1, location=(x, y, h / 2), scale=(w, d, h))
    for x, y in ((-2.5, 9.0), (1.5, 24.0), (7.0, 11.0)):
        add(bpy.ops.mesh.primitive_cylinder_add, tree, radius=0.2, depth=3, location=(x, y, 1.5))
        add(bpy.ops.mesh.primitive_ico_sphere_add, tree, radius=1.4, location=(x, y, 3.5))
    add(bpy.ops.mesh.primitive_uv_sphere_add, hill, radius=60, location=(-40, 190, -30))
    add(bpy.ops.mesh.primitive_uv_sphere_add, hill, radius=80, location=(70, 200, -50))
    sun(2.5)
    world((0.25, 0.45, 0.9), (0.75, 0.85, 0.95), clouds=True, strength=0.7)
    return {
        "a": ((-0.4, -2.0, 1.7), (0.0, 20.0, 3.0)),
        "b": ((0.45, -2.0, 1.7), (0.6, 20.0, 3.0)),
        "c": ((0.9, -1.0, 2.1), (1.5, 20.0, 2.5)),
    }


def close_object() -> dict:
    """Objects on a wooden table about 0.6 m from the camera, a brick wall behind."""
    table = material(
        "table", "wave", 12.0, (0.35, 0.2, 0.08), (0.75, 0.5, 0.3), 300.0, distortion=6.0
    )
    wall = material("wall", "brick", 8.0, (0.45, 0.45, 0.5), (0.85, 0.85, 0.8), 300.0, upright=True)
    return _objects_on_table(table, wall)


def striped_table() -> dict:
    """A stress case, reported apart from the targets: the close scene with a table of straight
    stripes and a wall of vertical lines (the brick texture without `upright`), both periodic
    along the baseline, where block matching cannot tell one period from the next."""
    table = material("table", "wave", 12.0, (0.35, 0.2, 0.08), (0.75, 0.5, 0.3), 300.0)
    wall = material("wall", "brick", 8.0, (0.45, 0.45, 0.5), (0.85, 0.85, 0.8), 300.0)
    return _objects_on_table(table, wall)


def _objects_on_table(table: bpy.types.Material, wall: bpy.types.Material) -> dict:
    red = material("red", "checker", 25.0, (0.6, 0.05, 0.05), (1.0, 0.8, 0.3), 300.0)
    green = material("green", "noise", 20.0, (0.05, 0.4, 0.1), (0.8, 1.0, 0.6), 300.0)
    blue = material("blue", "voronoi", 30.0, (0.1, 0.1, 0.6), (0.9, 0.9, 1.0), 300.0)
    add(bpy.ops.mesh.primitive_plane_add, table, size=3, location=(0, 0.5, 0))
    add(
        bpy.ops.mesh.primitive_plane_add,
        wall,
        size=3,
        location=(0, 1.2, 1.0),
        rotation=(math.pi / 2, 0, 0),
    )
    add(
        bpy.ops.mesh.primitive_monkey_add,
        green,
        size=0.22,
        location=(0.0, 0.35, 0.14),
        rotation=(0.3, 0, math.pi),
    )
    add(
        bpy.ops.mesh.primitive_torus_add,
        red,
        major_radius=0.09,
        minor_radius=0.035,
        location=(-0.2, 0.25, 0.035),
    )
    add(
        bpy.ops.mesh.primitive_cube_add,
        blue,
        size=0.12,
        location=(0.2, 0.2, 0.06),
        rotation=(0, 0, 0.5),
    )
    add(
        bpy.ops.mesh.primitive_cylinder_add, red, radius=0.05, depth=0.3, location=(0.15, 0.6, 0.15)
    )
    bpy.ops.object.light_add(type="AREA", location=(0.3, -0.3, 1.0))
    bpy.context.object.data.energy = 60.0
    bpy.context.object.data.size = 1.0
    world((0.4, 0.4, 0.4), (0.4, 0.4, 0.4), clouds=False, strength=0.5)
    return {
        "a": ((-0.04, -0.45, 0.4), (0.0, 0.4, 0.08)),
        "b": ((0.04, -0.44, 0.41), (0.02, 0.4, 0.08)),
        "c": ((0.09, -0.36, 0.47), (0.05, 0.4, 0.06)),
    }


SCENES = {
    "indoor_room": indoor_room,
    "outdoor_sky": outdoor_sky,
    "close_object": close_object,
    "striped_table": striped_table,
}


def camera(name: str, location, target) -> bpy.types.Object:
    bpy.ops.object.camera_add(location=location)
    cam = bpy.context.object
    cam.name = name
    cam.data.lens, cam.data.sensor_width = LENS_MM, SENSOR_MM
    cam.data.clip_end = 2000.0
    direction = np.subtract(target, location)
    # Point -Z at the target with Y up (Blender's camera axes), no roll.
    cam.rotation_euler = (
        math.atan2(math.hypot(direction[0], direction[1]), -direction[2]),
        0.0,
        math.atan2(direction[1], direction[0]) - math.pi / 2,
    )
    return cam


def depth_material() -> bpy.types.Material:
    mat = bpy.data.materials.new("z_depth")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    data = nodes.new("ShaderNodeCameraData")
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(data.outputs["View Z Depth"], emission.inputs["Color"])
    links.new(emission.outputs[0], output.inputs["Surface"])
    return mat


def render_scene(name: str, out: Path) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = SAMPLES
    scene.cycles.use_denoising = True
    scene.cycles.max_bounces = 3
    scene.cycles.use_adaptive_sampling = False
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    views = SCENES[name]()
    cams = {view: camera(view, *where) for view, where in views.items()}
    out.mkdir(parents=True, exist_ok=True)
    record = {}
    layer = scene.view_layers[0]
    depth_mat = depth_material()
    sky = scene.world
    for view, cam in cams.items():
        scene.camera = cam
        bpy.context.view_layer.update()
        layer.material_override = None
        scene.world = sky
        scene.cycles.samples, scene.cycles.filter_width = SAMPLES, 1.5
        scene.cycles.use_denoising = True
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_depth = "8"
        scene.render.filepath = str(out / f"{view}.png")
        bpy.ops.render.render(write_still=True)
        # The depth render: emission of View Z Depth, black world (sky = 0), no pixel blending.
        layer.material_override = depth_mat
        scene.world = None
        scene.cycles.samples, scene.cycles.filter_width = 1, 0.01
        scene.cycles.use_denoising = False
        scene.render.image_settings.file_format = "OPEN_EXR"
        scene.render.image_settings.color_depth = "32"
        exr = out / f"{view}_depth.exr"
        scene.render.filepath = str(exr)
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(str(exr))
        pixels = np.array(image.pixels[:], dtype=np.float32).reshape(SIZE[1], SIZE[0], 4)
        np.save(out / f"{view}_depth.npy", np.ascontiguousarray(pixels[::-1, :, 0]))
        bpy.data.images.remove(image)
        exr.unlink()
        record[view] = {
            "matrix_world": [list(row) for row in cam.matrix_world],
            "lens_mm": cam.data.lens,
            "sensor_width_mm": cam.data.sensor_width,
            "resolution": list(SIZE),
        }
    (out / "cameras.json").write_text(json.dumps(record, indent=1))


def main() -> None:
    out = Path(sys.argv[1])
    for name in sys.argv[2:] or list(SCENES):
        render_scene(name, out / name)


if __name__ == "__main__":
    main()

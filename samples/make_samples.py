"""Renders the two sample photos (samples/view_a.jpg, view_b.jpg) with Blender as a module.

Our own scene and renders, so the images are ours to ship. Run: python samples/make_samples.py
Also writes samples/cameras.json with both cameras (Blender matrix_world, lens, sensor) so tests
can compare the recovered relative pose with the truth.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import bpy

HERE = Path(__file__).resolve().parent
SIZE = (640, 480)


def textured_material(
    name: str, scale: float, colour_a, colour_b, kind: str = "noise"
) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    shader = nodes["Principled BSDF"]
    texture = nodes.new("ShaderNodeTexNoise" if kind == "noise" else "ShaderNodeTexChecker")
    texture.inputs["Scale"].default_value = scale
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (*colour_a, 1)
    ramp.color_ramp.elements[1].color = (*colour_b, 1)
    links.new(texture.outputs["Fac"], ramp.inputs["Fac"])
    if kind != "noise":
        noise = nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = scale * 4
        mix = nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.inputs["Factor"].default_value = 0.35
        links.new(ramp.outputs["Color"], mix.inputs[6])
        links.new(noise.outputs["Color"], mix.inputs[7])
        links.new(mix.outputs[2], shader.inputs["Base Color"])
    else:
        links.new(ramp.outputs["Color"], shader.inputs["Base Color"])
    return material


def add(op, material, **kwargs):
    op(**kwargs)
    bpy.context.object.data.materials.append(material)
    return bpy.context.object


def build_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 24
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    scene.view_settings.view_transform = "Standard"
    ground = textured_material("ground", 6.0, (0.35, 0.25, 0.15), (0.8, 0.7, 0.5), "checker")
    wall = textured_material("wall", 3.0, (0.2, 0.3, 0.5), (0.9, 0.9, 0.8), "noise")
    red = textured_material("red", 8.0, (0.6, 0.05, 0.05), (1.0, 0.8, 0.3), "checker")
    green = textured_material("green", 12.0, (0.05, 0.4, 0.1), (0.8, 1.0, 0.6), "noise")
    blue = textured_material("blue", 5.0, (0.1, 0.1, 0.6), (0.9, 0.9, 1.0), "checker")
    add(bpy.ops.mesh.primitive_plane_add, ground, size=20)
    add(
        bpy.ops.mesh.primitive_plane_add,
        wall,
        size=20,
        location=(0, 8, 5),
        rotation=(math.pi / 2, 0, 0),
    )
    add(
        bpy.ops.mesh.primitive_cube_add,
        red,
        size=1.6,
        location=(-1.6, 1.5, 0.8),
        rotation=(0, 0, 0.4),
    )
    add(bpy.ops.mesh.primitive_uv_sphere_add, green, radius=0.9, location=(1.2, 3.0, 0.9))
    add(bpy.ops.mesh.primitive_cylinder_add, blue, radius=0.5, depth=2.4, location=(0.2, 5.0, 1.2))
    add(
        bpy.ops.mesh.primitive_cube_add,
        blue,
        size=0.8,
        location=(2.4, 0.6, 0.4),
        rotation=(0, 0, 0.9),
    )
    bpy.ops.object.light_add(type="SUN", rotation=(0.7, 0.2, 0.5))
    bpy.context.object.data.energy = 4.0
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
    scene.world = world


def camera(name: str, location, target) -> bpy.types.Object:
    bpy.ops.object.camera_add(location=location)
    cam = bpy.context.object
    cam.name = name
    cam.data.lens = 28.0
    cam.data.sensor_width = 36.0
    constraint = cam.constraints.new("TRACK_TO")
    empty = bpy.data.objects.new(name + "_target", None)
    bpy.context.scene.collection.objects.link(empty)
    empty.location = target
    constraint.target = empty
    constraint.track_axis = "TRACK_NEGATIVE_Z"
    constraint.up_axis = "UP_Y"
    return cam


def main() -> None:
    build_scene()
    scene = bpy.context.scene
    views = {
        "view_a": camera("view_a", (-1.2, -6.5, 2.4), (0.0, 2.5, 0.9)),
        "view_b": camera("view_b", (0.6, -6.2, 2.5), (0.3, 2.5, 1.0)),
    }
    record = {}
    for name, cam in views.items():
        scene.camera = cam
        bpy.context.view_layer.update()
        scene.render.filepath = str(HERE / f"{name}.png")
        scene.render.image_settings.file_format = "JPEG"
        scene.render.image_settings.quality = 90
        scene.render.filepath = str(HERE / f"{name}.jpg")
        bpy.ops.render.render(write_still=True)
        record[name] = {
            "matrix_world": [list(row) for row in cam.matrix_world],
            "lens_mm": cam.data.lens,
            "sensor_width_mm": cam.data.sensor_width,
            "resolution": list(SIZE),
        }
    (HERE / "cameras.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

"""The scene's cameras for tools that render a backend scene in Blender headless
(bench/viewport.py, docs/make_pictures.py): the reference cameras from scene.ply's header, the
flythrough's middle camera, and a Blender camera object for one of them.

Cameras are JSON-ready dicts, as tests/addon/backend_reference.py reads them: {"c2w": 4x4
OpenCV camera-to-splat, "K": 3x3 pixels, "width": W, "height": H}. Runs in Blender's Python;
bpy and mathutils are imported where they are used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from videoscene_protocol import cameras

PLY_COMMENT = b"comment videoscene "  # the backend's scene.ply header (backend/scene/ply.py)


def reference_cameras(ply: Path, width: int, height: int) -> list[dict]:
    """The photos' cameras from the scene.ply header, K scaled to width x height."""
    with open(ply, "rb") as file:
        header = file.read(1 << 20).split(b"end_header")[0]
    line = next(row for row in header.splitlines() if row.startswith(PLY_COMMENT))
    scaled = []
    for camera in json.loads(line[len(PLY_COMMENT) :])["reference_cameras"]:
        K = np.array(camera["K"], dtype=np.float64)
        K[0] *= width / camera["width"]
        K[1] *= height / camera["height"]
        scaled.append({"c2w": camera["c2w"], "K": K.tolist(), "width": width, "height": height})
    return scaled


def halfway(first: dict, second: dict) -> dict:
    """The flythrough's middle camera: positions averaged, rotations slerped half way."""
    from mathutils import Matrix

    a, b = Matrix(first["c2w"]), Matrix(second["c2w"])
    rotation = a.to_quaternion().slerp(b.to_quaternion(), 0.5).to_matrix().to_4x4()
    rotation.translation = (a.translation + b.translation) / 2
    return {**first, "c2w": [list(row) for row in rotation]}


def blender_camera(camera: dict, name: str = "Camera"):
    """A Blender camera object at `camera`, made the scene's camera, the render at its size."""
    import bpy
    from mathutils import Matrix

    scene = bpy.context.scene
    obj = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    scene.collection.objects.link(obj)
    obj.matrix_world = Matrix(cameras.opencv_to_blender_c2w(np.array(camera["c2w"])).tolist())
    width, height = camera["width"], camera["height"]
    params = cameras.blender_from_intrinsics(np.array(camera["K"]), width, height)
    obj.data.lens, obj.data.sensor_fit = params.lens_mm, params.sensor_fit
    obj.data.sensor_width, obj.data.sensor_height = params.sensor_width_mm, params.sensor_height_mm
    obj.data.shift_x, obj.data.shift_y = params.shift_x, params.shift_y
    scene.camera = obj
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    return obj

"""Splat -> point cloud under the scene empty; frames -> sequencer strips."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest

from .conftest import keyframed_camera, submodule

cameras = pytest.importorskip(
    "videoscene_protocol.cameras", reason="protocol/cameras.py not in the tree yet"
)


def random_splat(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(count, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return {
        "means": rng.normal(size=(count, 3)).astype(np.float32),
        "quats": quats,
        "scales": rng.uniform(0.01, 0.1, size=(count, 3)).astype(np.float32),
        "opacities": rng.uniform(0.0, 1.0, size=count).astype(np.float32),
        "colors": rng.uniform(0.0, 1.0, size=(count, 3)).astype(np.float32),
    }


def read_attribute(pointcloud, name: str, key: str, width: int) -> np.ndarray:
    values = np.empty(len(pointcloud.points) * width, dtype=np.float32)
    pointcloud.attributes[name].data.foreach_get(key, values)
    return values.reshape(-1, width) if width > 1 else values


def test_import_splat_attributes(addon):
    splat = submodule("importers.splat")
    arrays = random_splat(5000)
    parent = bpy.data.objects.new("parent", None)
    bpy.context.scene.collection.objects.link(parent)
    obj = splat.import_splat(bpy.context, arrays, parent, bpy.context.scene.collection)
    assert obj.type == "POINTCLOUD" and obj.parent is parent
    cloud = obj.data
    assert len(cloud.points) == 5000
    assert np.allclose(read_attribute(cloud, "position", "vector", 3), arrays["means"])
    rgba = read_attribute(cloud, "color", "color", 4)
    assert np.allclose(rgba[:, :3], arrays["colors"]) and np.allclose(
        rgba[:, 3], arrays["opacities"]
    )
    assert np.allclose(read_attribute(cloud, "opacity", "value", 1), arrays["opacities"])
    assert np.allclose(read_attribute(cloud, "scale", "vector", 3), arrays["scales"])
    assert np.allclose(read_attribute(cloud, "rotation", "value", 4), arrays["quats"], atol=1e-6)
    assert np.allclose(read_attribute(cloud, "radius", "value", 1), arrays["scales"].mean(axis=1))
    assert cloud.materials[0].name == "VideoScene Splat"
    assert not [mesh for mesh in bpy.data.meshes if mesh.users == 0]  # no orphan left behind


def test_import_splat_rejects_bad_shapes(addon):
    splat = submodule("importers.splat")
    errors = submodule("_vendor.videoscene_protocol.errors")
    arrays = random_splat(10)
    arrays["scales"] = arrays["scales"][:5]
    try:
        splat.import_splat(bpy.context, arrays, None, bpy.context.scene.collection)
    except errors.VideoSceneError as error:
        assert error.code == errors.ErrorCode.SHAPE_MISMATCH and "scales" in error.message
    else:
        raise AssertionError("mismatched shapes must be refused")


def build_result(count: int = 2000) -> SimpleNamespace:
    """A build_scene result as the client delivers it (meta, arrays, blobs)."""
    c2w1 = np.eye(4)
    c2w1[:3, 3] = (0.3, 0.0, 0.05)
    K = [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]]
    references = [
        {"c2w": np.eye(4).tolist(), "K": K, "width": 640, "height": 480},
        {"c2w": c2w1.tolist(), "K": K, "width": 640, "height": 480},
    ]
    meta = {"scene_id": "abc123", "prior": "stereo", "num_gaussians": count}
    meta["reference_cameras"] = references
    return SimpleNamespace(
        job_id="job1", meta=meta, arrays=random_splat(count), blobs={"scene.ply": b"ply\n"}
    )


def test_import_build_result_hierarchy(addon):
    workflow = submodule("workflow")
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    result = build_result()
    empty = workflow.import_build_result(bpy.context, scene, result)
    assert empty.name.startswith("VideoScene Scene") and empty.type == "EMPTY"
    assert scene.videoscene.scene_empty == empty
    assert empty["videoscene_scene_id"] == "abc123"
    assert Path(empty["videoscene_ply"]).read_bytes() == b"ply\n"
    assert np.allclose(np.array(empty.matrix_world), camera_path.DEFAULT_SCENE_MATRIX, atol=1e-6)
    children = {child.type: child for child in empty.children if child.type == "POINTCLOUD"}
    assert len(children["POINTCLOUD"].data.points) == 2000
    refs = sorted((c for c in empty.children if c.type == "CAMERA"), key=lambda c: c.name)
    assert [c.name for c in refs] == ["VideoScene Reference 0", "VideoScene Reference 1"]
    # Intrinsics round-trip through the shared module.
    K = cameras.intrinsics_from_blender(
        refs[0].data.lens,
        refs[0].data.sensor_width,
        refs[0].data.sensor_height,
        refs[0].data.sensor_fit,
        640,
        480,
    )
    assert np.allclose(K, result.meta["reference_cameras"][0]["K"], atol=1e-4)
    # Reference camera 1 in the splat frame is the c2w the backend sent.
    local = np.linalg.inv(np.array(empty.matrix_world)) @ np.array(refs[1].matrix_world)
    sent = np.array(result.meta["reference_cameras"][1]["c2w"])
    assert np.allclose(cameras.blender_to_opencv_c2w(local), sent, atol=1e-5)
    # The default orientation: splat +y (down) is Blender -Z.
    assert np.allclose(np.array(empty.matrix_world)[:3, 1], (0.0, 0.0, -1.0), atol=1e-6)
    assert json.loads(empty["videoscene_reference_cameras"])[1]["width"] == 640


def test_keyframe_flythrough_after_build(addon):
    workflow = submodule("workflow")
    compat = submodule("compat")
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 25
    empty = workflow.import_build_result(bpy.context, scene, build_result())
    camera = workflow.keyframe_flythrough(scene)
    assert compat.is_animated(camera)
    refs = sorted((c for c in empty.children if c.type == "CAMERA"), key=lambda c: c.name)
    for frame, ref in ((1, refs[0]), (25, refs[1])):
        scene.frame_set(frame)
        assert np.allclose(np.array(camera.matrix_world), np.array(ref.matrix_world), atol=1e-5), (
            frame
        )
    assert all(
        point.interpolation == "LINEAR"
        for fcurve in compat.action_fcurves(camera)
        for point in fcurve.keyframe_points
    )


def test_sequencer_strips_grow_one_image_per_scene_frame(addon, tmp_path):
    sequencer = submodule("importers.sequencer")
    compat = submodule("compat")
    scene = bpy.context.scene
    keyframed_camera(scene, 1, 20)
    # Same size as the frames, so the strip is not scaled (FIT uses the resolution at creation).
    scene.render.resolution_x, scene.render.resolution_y = 36, 24
    scene.render.resolution_percentage = 100
    rng = np.random.default_rng(1)
    refined = rng.integers(0, 256, size=(20, 24, 36, 3), dtype=np.uint8)
    files = sequencer.write_pngs(refined, tmp_path / "refined")
    channel = sequencer.free_channel_pair(scene, 1, 20)
    # Two windows arrive: the strip is created with the first and extended by the second.
    strip = sequencer.extend_image_strip(scene, "VS refined", files[:9], [1] * 9, 1, channel)
    assert strip.frame_final_end == 10
    strip = sequencer.extend_image_strip(scene, "VS refined", files[9:], [1] * 11, 1, channel)
    coarse = sequencer.extend_image_strip(
        scene, "VS coarse", files, [1] * 20, 1, channel - 1, mute=True
    )
    assert strip.frame_final_start == 1 and strip.frame_final_end == 21
    assert [e.filename for e in strip.elements] == [f.name for f in files]  # 1:1, no repeats
    assert coarse.mute and not strip.mute and coarse.channel == strip.channel - 1
    assert len(list(compat.sequence_editor_strips(scene))) == 2
    assert sequencer.free_channel_pair(scene, 1, 20) == channel + 2

    # Render sequencer frame 3 with the Standard view transform: it is image 2 exactly.
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.frame_set(3)
    scene.render.filepath = str(tmp_path / "render.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp_path / "render.png"))
    pixels = np.empty(36 * 24 * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    rendered = np.rint(pixels.reshape(24, 36, 4)[::-1, :, :3] * 255).astype(np.uint8)
    assert np.array_equal(rendered, refined[2])


def test_sequencer_holds_each_image_over_a_frame_step(addon, tmp_path):
    sequencer = submodule("importers.sequencer")
    files = sequencer.write_pngs(np.zeros((4, 8, 12, 3), dtype=np.uint8), tmp_path)
    strip = sequencer.extend_image_strip(bpy.context.scene, "VS", files, [3, 3, 3, 1], 1, 2)
    assert strip.frame_final_end == 11 and len(strip.elements) == 10
    assert [e.filename for e in strip.elements][:4] == [files[0].name] * 3 + [files[1].name]


def write_3dgs_ply(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A binary 3DGS PLY (the layout 3DGS / gsplat tools write), built with numpy."""
    count = len(arrays["means"])
    fields = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    fields += ["scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.zeros(count, dtype=[(name, "<f4") for name in fields])
    data["x"], data["y"], data["z"] = arrays["means"].T
    dc = (arrays["colors"] - 0.5) / 0.28209479177387814
    data["f_dc_0"], data["f_dc_1"], data["f_dc_2"] = dc.T
    data["opacity"] = np.log(arrays["opacities"] / (1.0 - arrays["opacities"]))
    data["scale_0"], data["scale_1"], data["scale_2"] = np.log(arrays["scales"]).T
    data["rot_0"], data["rot_1"], data["rot_2"], data["rot_3"] = arrays["quats"].T
    header = "ply\nformat binary_little_endian 1.0\n"
    header += f"element vertex {count}\n" + "".join(f"property float {n}\n" for n in fields)
    path.write_bytes((header + "end_header\n").encode() + data.tobytes())


def test_ply_round_trip_into_point_cloud(addon, tmp_path):
    ply = submodule("importers.ply")
    arrays = random_splat(3000)
    arrays["opacities"] = np.clip(arrays["opacities"], 0.01, 0.99)
    path = tmp_path / "scene.ply"
    write_3dgs_ply(path, arrays)
    loaded = ply.splat_arrays_from_ply(path)
    for name, values in arrays.items():
        assert np.allclose(loaded[name], values, atol=1e-5), name
    assert bpy.ops.videoscene.import_splat_ply(filepath=str(path)) == {"FINISHED"}
    clouds = [obj for obj in bpy.data.objects if obj.type == "POINTCLOUD"]
    assert len(clouds) == 1 and len(clouds[0].data.points) == 3000
    assert clouds[0].parent.name.startswith("VideoScene Scene")


def test_ply_errors_are_clear(addon, tmp_path):
    ply = submodule("importers.ply")
    errors = submodule("_vendor.videoscene_protocol.errors")
    path = tmp_path / "bad.ply"
    path.write_bytes(b"not a ply")
    with pytest.raises(errors.VideoSceneError, match="not a PLY"):
        ply.splat_arrays_from_ply(path)
    write_3dgs_ply(path, random_splat(10))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(errors.VideoSceneError, match="truncated"):
        ply.splat_arrays_from_ply(path)

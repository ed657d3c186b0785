"""Camera sampling and conversion into the splat frame, checked against protocol/cameras.py."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from mathutils import Matrix

from .conftest import keyframed_camera, submodule

cameras = pytest.importorskip(
    "videoscene_protocol.cameras", reason="protocol/cameras.py not in the tree yet"
)

FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])  # Blender camera axes (-Z forward, Y up) -> OpenCV


def test_one_camera_per_scene_frame_at_the_output_size(addon):
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.render.resolution_percentage = 50
    path = camera_path.path_frames(scene, 1, 120)
    assert path.frames == tuple(range(1, 121)) and (path.width, path.height) == (960, 540)
    assert path.holds == [1] * 120  # one image per scene frame
    scene.frame_step = 3
    stepped = camera_path.path_frames(scene, 1, 10)
    assert stepped.frames == (1, 4, 7, 10) and stepped.holds == [3, 3, 3, 1]
    scene.frame_step = 1
    preview = camera_path.path_frames(scene, 1, 120, preview=True)
    assert len(preview.frames) == 60 and (preview.width, preview.height) == (480, 270)
    assert sum(preview.holds) == 120  # every second frame, each held for two
    assert camera_path.path_frames(scene, 5, 5).frames == (5,)  # a single frame is a still


def test_bad_ranges_and_sizes_are_refused_before_sending(addon):
    camera_path = submodule("camera_path")
    errors = submodule("_vendor.videoscene_protocol.errors")
    scene = bpy.context.scene
    with pytest.raises(errors.VideoSceneError, match="empty"):
        camera_path.path_frames(scene, 10, 9)
    with pytest.raises(errors.VideoSceneError, match="at most 10000"):
        camera_path.path_frames(scene, 1, 10_001)
    scene.render.resolution_x, scene.render.resolution_percentage = 8000, 100
    with pytest.raises(errors.VideoSceneError, match="outside"):
        camera_path.path_frames(scene, 1, 10)


def test_render_cameras_match_shared_conversion(addon):
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    camera = keyframed_camera(scene, 1, 49)
    empty = bpy.data.objects.new("scene empty", None)
    scene.collection.objects.link(empty)
    empty.matrix_world = Matrix(camera_path.DEFAULT_SCENE_MATRIX.tolist())
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.render.resolution_percentage = 10
    camera.data.sensor_fit = "VERTICAL"
    camera.data.shift_y = 0.05
    path = camera_path.path_frames(scene, 1, 49)
    c2w, K = camera_path.render_cameras(scene, camera, empty, path)
    assert c2w.shape == (49, 4, 4) and K.shape == (49, 3, 3)
    expected_K = cameras.intrinsics_from_blender(
        camera.data.lens, 36.0, camera.data.sensor_height, "VERTICAL", 192, 108, shift_y=0.05
    )
    assert np.allclose(K, expected_K)  # the output size, sensor fit and shift of the camera

    scene.frame_set(25)  # camera 24 is scene frame 25
    world = np.array(camera.matrix_world)
    relative = np.linalg.inv(camera_path.DEFAULT_SCENE_MATRIX) @ world
    assert np.allclose(c2w[24], cameras.blender_to_opencv_c2w(relative), atol=1e-5)
    assert np.allclose(c2w[24], relative @ FLIP_YZ, atol=1e-5)
    # The camera looks roughly along Blender +Y = the splat frame's +z (OpenCV forward).
    assert c2w[0][:3, 2] @ np.array([0.0, 0.0, 1.0]) > 0.9
    assert np.allclose(np.linalg.det(c2w[:, :3, :3]), 1.0, atol=1e-6)
    assert scene.frame_current == 25  # sampling restores the current frame


def test_animated_lens_gives_each_frame_its_intrinsics(addon):
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    camera = keyframed_camera(scene, 1, 9)
    camera.data.lens = 35.0
    camera.data.keyframe_insert("lens", frame=1)
    camera.data.lens = 70.0
    camera.data.keyframe_insert("lens", frame=9)
    empty = bpy.data.objects.new("scene empty", None)
    _, K = camera_path.render_cameras(scene, camera, empty, camera_path.path_frames(scene, 1, 9))
    assert K[-1, 0, 0] == pytest.approx(2 * K[0, 0, 0])


def test_scaled_scene_empty_scales_translations_only(addon):
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    camera = keyframed_camera(scene, 1, 49)
    empty = bpy.data.objects.new("scene empty", None)
    scene.collection.objects.link(empty)
    empty.matrix_world = Matrix(camera_path.DEFAULT_SCENE_MATRIX.tolist())
    path = camera_path.path_frames(scene, 1, 49)
    plain, _ = camera_path.render_cameras(scene, camera, empty, path)
    empty.scale = (2.0, 2.0, 2.0)
    empty.location = (0.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    scaled, _ = camera_path.render_cameras(scene, camera, empty, path)
    assert np.allclose(scaled[:, :3, :3], plain[:, :3, :3], atol=1e-6)
    assert np.allclose(scaled[:, :3, 3], plain[:, :3, 3] / 2.0, atol=1e-6)


def test_intrinsics_non_square_resolution(addon):
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    camera = keyframed_camera(scene)
    camera.data.lens = 35.0
    camera.data.sensor_fit = "AUTO"
    camera.data.shift_x = 0.1
    K = camera_path.camera_intrinsics(scene, camera, 720, 480)
    expected = cameras.intrinsics_from_blender(
        35.0, camera.data.sensor_width, camera.data.sensor_height, "AUTO", 720, 480, shift_x=0.1
    )
    assert np.allclose(K, expected)
    # AUTO fit on a landscape frame: the sensor width spans the 720 pixels.
    assert K[0, 0] == pytest.approx(35.0 / 36.0 * 720.0, rel=1e-6)
    assert K[1, 1] == pytest.approx(K[0, 0], rel=1e-6)
    assert K[0, 2] != pytest.approx(360.0)  # the shift moves the principal point


def test_unanimated_camera_is_a_bad_camera(addon):
    camera_path = submodule("camera_path")
    errors = submodule("_vendor.videoscene_protocol.errors")
    scene = bpy.context.scene
    camera = bpy.data.objects.new("still", bpy.data.cameras.new("still"))
    scene.collection.objects.link(camera)
    empty = bpy.data.objects.new("scene empty", None)
    with pytest.raises(errors.VideoSceneError) as caught:
        camera_path.render_cameras(scene, camera, empty, camera_path.path_frames(scene, 1, 49))
    assert caught.value.code == errors.ErrorCode.BAD_CAMERA
    assert "no animation" in caught.value.message


def test_flythrough_and_path_alignment(addon):
    camera_path = submodule("camera_path")
    ref0 = np.eye(4)
    ref1 = np.eye(4)
    ref1[:3, 3] = (0.5, 0.0, 0.0)
    angle = np.radians(20.0)
    ref1[:3, :3] = [
        [np.cos(angle), 0, np.sin(angle)],
        [0, 1, 0],
        [-np.sin(angle), 0, np.cos(angle)],
    ]
    path = camera_path.reference_flythrough(ref0, ref1, 5)
    assert np.allclose(path[0], ref0) and np.allclose(path[-1], ref1, atol=1e-6)
    assert np.allclose(path[2][:3, 3], (0.25, 0.0, 0.0))
    middle_angle = np.degrees(np.arccos((np.trace(path[2][:3, :3]) - 1) / 2))
    assert middle_angle == pytest.approx(10.0, abs=1e-4)

    first = np.array(Matrix.Translation((1.0, 2.0, 3.0)) @ Matrix.Rotation(0.4, 4, "Z"))
    last = first.copy()
    last[:3, 3] += (0.0, 4.0, 0.0)  # path spans 4 units; baseline is 0.5 -> scale 8
    scene_matrix = camera_path.scene_matrix_for_path(ref0, ref1, first, last)
    assert np.allclose(np.linalg.norm(scene_matrix[:3, :3], axis=0), 8.0)
    placed = np.array(camera_path.splat_to_world_camera(scene_matrix, ref0))
    assert np.allclose(placed, first, atol=1e-6)  # reference camera 0 sits on the first frame

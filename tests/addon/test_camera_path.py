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


def test_sample_times_and_nearest_indices(addon):
    camera_path = submodule("camera_path")
    times = camera_path.sample_times(1, 97)
    assert len(times) == 49 and times[0] == 1.0 and times[-1] == 97.0
    assert np.allclose(np.diff(times), 2.0)
    nearest = camera_path.nearest_sample_indices(1, 97)
    assert len(nearest) == 97 and nearest[0] == 0 and nearest[-1] == 48
    assert nearest[2] == 1  # frame 3 is sample 1 exactly
    # fewer frames than samples: each frame still gets the sample nearest in time
    short = camera_path.nearest_sample_indices(10, 34)
    assert len(short) == 25 and short[0] == 0 and short[-1] == 48 and short[12] == 24


def test_render_cameras_match_shared_conversion(addon):
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    camera = keyframed_camera(scene, 1, 49)
    empty = bpy.data.objects.new("scene empty", None)
    scene.collection.objects.link(empty)
    empty.matrix_world = Matrix(camera_path.DEFAULT_SCENE_MATRIX.tolist())
    c2w, K = camera_path.render_cameras(scene, camera, empty, 1, 49)
    assert c2w.shape == (49, 4, 4) and K.shape == (49, 3, 3)

    scene.frame_set(25)  # sample 24 sits exactly on frame 25
    world = np.array(camera.matrix_world)
    relative = np.linalg.inv(camera_path.DEFAULT_SCENE_MATRIX) @ world
    assert np.allclose(c2w[24], cameras.blender_to_opencv_c2w(relative), atol=1e-5)
    assert np.allclose(c2w[24], relative @ FLIP_YZ, atol=1e-5)
    # The camera looks roughly along Blender +Y = the splat frame's +z (OpenCV forward).
    assert c2w[0][:3, 2] @ np.array([0.0, 0.0, 1.0]) > 0.9
    assert np.allclose(np.linalg.det(c2w[:, :3, :3]), 1.0, atol=1e-6)
    assert scene.frame_current == 25  # sampling restores the current frame


def test_scaled_scene_empty_scales_translations_only(addon):
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    camera = keyframed_camera(scene, 1, 49)
    empty = bpy.data.objects.new("scene empty", None)
    scene.collection.objects.link(empty)
    empty.matrix_world = Matrix(camera_path.DEFAULT_SCENE_MATRIX.tolist())
    plain, _ = camera_path.render_cameras(scene, camera, empty, 1, 49)
    empty.scale = (2.0, 2.0, 2.0)
    empty.location = (0.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    scaled, _ = camera_path.render_cameras(scene, camera, empty, 1, 49)
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
        camera_path.render_cameras(scene, camera, empty, 1, 49)
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

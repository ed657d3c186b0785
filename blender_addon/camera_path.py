"""Camera paths: sample a Blender camera at the video model's instants, express it in the splat
frame, place the scene empty, and build the seed's reference flythrough as a starter path.

Conventions (docs/DESIGN): the splat frame is reference camera 0's OpenCV frame; the scene
empty's matrix_world maps splat frame -> Blender world. Axis conversions and intrinsics come from
the shared videoscene_protocol.cameras module so the backend and the add-on agree.
"""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from ._vendor.videoscene_protocol import cameras
from ._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError

VIDEO_FRAMES = 49  # the video model's frame contract
VIDEO_WIDTH = 720
VIDEO_HEIGHT = 480

# Default splat frame -> Blender world: a rotation of -90 degrees about X, so the OpenCV frame's
# +y (down) becomes Blender -Z and +z (forward) becomes Blender +Y; x stays x.
DEFAULT_SCENE_MATRIX = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


def sample_times(frame_start: int, frame_end: int, count: int = VIDEO_FRAMES) -> np.ndarray:
    """`count` evenly spaced instants (frames, with subframes) covering [start, end]."""
    if frame_end <= frame_start:
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"The frame range {frame_start}..{frame_end} is empty.",
            "Set an end frame after the start frame.",
        )
    return np.linspace(float(frame_start), float(frame_end), count)


def nearest_sample_indices(
    frame_start: int, frame_end: int, count: int = VIDEO_FRAMES
) -> np.ndarray:
    """For each Blender frame in [start, end], the index of the sample nearest in time."""
    frames = np.arange(frame_start, frame_end + 1, dtype=np.float64)
    step = (frame_end - frame_start) / (count - 1)
    return np.clip(np.rint((frames - frame_start) / step), 0, count - 1).astype(np.int64)


def _frame_set(scene: bpy.types.Scene, time: float) -> None:
    whole = math.floor(time)
    scene.frame_set(whole, subframe=float(time - whole))


def sample_world_matrices(
    scene: bpy.types.Scene, camera: bpy.types.Object, times: np.ndarray
) -> np.ndarray:
    """The camera's matrix_world at each instant, (N, 4, 4) float64. Restores the current frame."""
    current, current_sub = scene.frame_current, scene.frame_subframe
    out = np.empty((len(times), 4, 4))
    try:
        for i, time in enumerate(times):
            _frame_set(scene, float(time))
            out[i] = np.array(camera.matrix_world)
    finally:
        scene.frame_set(current, subframe=current_sub)
    return out


def rigid(matrix: np.ndarray) -> np.ndarray:
    """Drop scale and shear from 4x4 transforms (..., 4, 4), keeping rotation and translation."""
    out = np.array(matrix, dtype=np.float64, copy=True)
    u, _, vt = np.linalg.svd(out[..., :3, :3])
    # A mirrored (negative-scale) object: flip one axis so the result is a proper rotation.
    sign = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= sign[..., None]
    rotation = u @ vt
    out[..., :3, :3] = rotation
    out[..., 3, :] = (0.0, 0.0, 0.0, 1.0)
    return out


def world_to_splat(scene_matrix: np.ndarray, camera_world: np.ndarray) -> np.ndarray:
    """Blender-axes camera matrices in the splat frame: rigid(inverse(scene) @ camera).

    The inverse divides the empty's scale out of translations (positions become splat units);
    rigid() then removes what scale remains in the rotation part."""
    relative = np.linalg.inv(np.asarray(scene_matrix, dtype=np.float64)) @ camera_world
    return rigid(relative)


def camera_intrinsics(
    scene: bpy.types.Scene, camera: bpy.types.Object, width: int, height: int
) -> np.ndarray:
    """Pixel intrinsics (3x3) of a perspective camera rendered at width x height."""
    data = camera.data
    if data.type != "PERSP":
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"Camera {camera.name!r} is {data.type.lower()}, not perspective.",
            "Set the camera's type to Perspective.",
        )
    render = scene.render
    return np.asarray(
        cameras.intrinsics_from_blender(
            data.lens,
            data.sensor_width,
            data.sensor_height,
            data.sensor_fit,
            width,
            height,
            pixel_aspect_x=render.pixel_aspect_x,
            pixel_aspect_y=render.pixel_aspect_y,
            shift_x=data.shift_x,
            shift_y=data.shift_y,
        ),
        dtype=np.float64,
    )


def render_cameras(
    scene: bpy.types.Scene,
    camera: bpy.types.Object,
    scene_empty: bpy.types.Object,
    frame_start: int,
    frame_end: int,
    width: int = VIDEO_WIDTH,
    height: int = VIDEO_HEIGHT,
    count: int = VIDEO_FRAMES,
) -> tuple[np.ndarray, np.ndarray]:
    """(c2w (N,4,4) OpenCV in the splat frame, K (N,3,3)) for a render_video job."""
    if camera is None or camera.type != "CAMERA":
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA, "No camera is chosen.", "Pick a camera in the VideoScene panel."
        )
    times = sample_times(frame_start, frame_end, count)
    world = sample_world_matrices(scene, camera, times)
    if np.allclose(world, world[0], atol=1e-7):
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"Camera {camera.name!r} has no animation over frames {frame_start}..{frame_end}.",
            "Keyframe the camera along a path (or use 'Keyframe Reference Flythrough').",
        )
    splat_blender = world_to_splat(np.array(scene_empty.matrix_world), world)
    c2w = np.asarray(cameras.blender_to_opencv_c2w(splat_blender), dtype=np.float64)
    K = camera_intrinsics(scene, camera, width, height)
    return c2w, np.broadcast_to(K, (count, 3, 3)).copy()


def reference_flythrough(c2w_0: np.ndarray, c2w_1: np.ndarray, count: int) -> np.ndarray:
    """OpenCV c2w matrices moving from reference camera 0 to 1: positions linearly, rotations
    by quaternion slerp. A numpy/mathutils port of the backend's flythrough (the add-on cannot
    import torch), so the starter path needs no extra round trip."""
    q0 = Matrix(np.asarray(c2w_0)[:3, :3].tolist()).to_quaternion()
    q1 = Matrix(np.asarray(c2w_1)[:3, :3].tolist()).to_quaternion()
    if q0.dot(q1) < 0.0:  # shortest arc
        q1 = Quaternion(-q1)
    p0, p1 = np.asarray(c2w_0)[:3, 3], np.asarray(c2w_1)[:3, 3]
    out = np.tile(np.eye(4), (count, 1, 1))
    for i, t in enumerate(np.linspace(0.0, 1.0, count)):
        out[i, :3, :3] = np.array(q0.slerp(q1, float(t)).to_matrix())
        out[i, :3, 3] = (1.0 - t) * p0 + t * p1
    return out


def scene_matrix_for_path(
    ref_c2w_0: np.ndarray,
    ref_c2w_1: np.ndarray,
    path_first_world: np.ndarray,
    path_last_world: np.ndarray,
) -> np.ndarray:
    """Scene empty matrix (splat -> world) putting reference camera 0 on the path's first frame,
    scaled so the reference baseline equals the distance between the path's ends."""
    ref0_blender = np.asarray(cameras.opencv_to_blender_c2w(ref_c2w_0), dtype=np.float64)
    first = rigid(path_first_world)
    baseline = float(np.linalg.norm(np.asarray(ref_c2w_1)[:3, 3] - np.asarray(ref_c2w_0)[:3, 3]))
    span = float(np.linalg.norm(path_last_world[:3, 3] - path_first_world[:3, 3]))
    scale = span / baseline if baseline > 1e-9 and span > 1e-9 else 1.0
    rotation = first[:3, :3] @ ref0_blender[:3, :3].T
    out = np.eye(4)
    out[:3, :3] = scale * rotation
    out[:3, 3] = first[:3, 3] - scale * rotation @ ref0_blender[:3, 3]
    return out


def splat_to_world_camera(scene_matrix: np.ndarray, c2w_opencv: np.ndarray) -> Matrix:
    """A Blender camera object's matrix_world (no scale) for an OpenCV c2w in the splat frame."""
    blender = np.asarray(cameras.opencv_to_blender_c2w(c2w_opencv), dtype=np.float64)
    return Matrix(rigid(np.asarray(scene_matrix) @ blender).tolist())


def keyframe_camera_path(
    camera: bpy.types.Object,
    scene_matrix: np.ndarray,
    c2w_path: np.ndarray,
    frame_start: int,
    frame_end: int,
) -> None:
    """Keyframe location and rotation of `camera` at evenly spaced frames along c2w_path."""
    from .compat import action_fcurves

    camera.rotation_mode = "QUATERNION"
    if camera.animation_data is not None and camera.animation_data.action is not None:
        camera.animation_data.action = None
    frames = np.linspace(frame_start, frame_end, len(c2w_path))
    for frame, c2w in zip(frames, c2w_path, strict=True):
        location, rotation, _ = splat_to_world_camera(scene_matrix, c2w).decompose()
        camera.location = location
        camera.rotation_quaternion = rotation
        camera.keyframe_insert("location", frame=float(frame))
        camera.keyframe_insert("rotation_quaternion", frame=float(frame))
    for fcurve in action_fcurves(camera):
        for point in fcurve.keyframe_points:
            point.interpolation = "LINEAR"

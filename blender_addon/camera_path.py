"""Camera paths: sample a Blender camera at every scene frame of the range (its output size,
sensor fit and shift), express it in the splat frame, place the scene empty, and build the
seed's reference flythrough as a starter path.

Conventions (docs/DESIGN): the splat frame is reference camera 0's OpenCV frame; the scene
empty's matrix_world maps splat frame -> Blender world. Axis conversions and intrinsics come from
the shared videoscene_protocol.cameras module so the backend and the add-on agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix, Quaternion

from ._vendor.videoscene_protocol import cameras
from ._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ._vendor.videoscene_protocol.params import MAX_CAMERAS, RENDER_VIDEO

# Default splat frame -> Blender world: a rotation of -90 degrees about X, so the OpenCV frame's
# +y (down) becomes Blender -Z and +z (forward) becomes Blender +Y; x stays x.
DEFAULT_SCENE_MATRIX = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


@dataclass(frozen=True)
class PathFrames:
    """The scene frames a video renders and the size it renders them at.

    One camera per scene frame of the range, every `step`-th frame (the scene's frame_step;
    Preview doubles it), at the scene's output size (resolution x percentage; Preview halves
    it). `holds[i]` is how many scene frames image i covers in the strip (1 unless stepping)."""

    frames: tuple[int, ...]
    end: int  # the range's last scene frame (the last image holds up to it)
    step: int
    width: int
    height: int

    @property
    def holds(self) -> list[int]:
        return [min(self.step, self.end - frame + 1) for frame in self.frames]


def output_size(scene: bpy.types.Scene, preview: bool = False) -> tuple[int, int]:
    """The scene's render size as Blender computes it (resolution x percentage), halved for
    Preview; at least the backend's minimum side."""
    render = scene.render
    divisor = 200 if preview else 100
    width = render.resolution_x * render.resolution_percentage // divisor
    height = render.resolution_y * render.resolution_percentage // divisor
    low = int(RENDER_VIDEO["width"].minimum)
    high = int(RENDER_VIDEO["width"].maximum)
    if not (low <= width <= high and low <= height <= high):
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"The output size {width}x{height} is outside {low}..{high} pixels per side.",
            "Change the scene's resolution or its percentage (Output Properties).",
        )
    return width, height


def path_frames(
    scene: bpy.types.Scene, frame_start: int, frame_end: int, preview: bool = False
) -> PathFrames:
    if frame_end < frame_start:
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"The frame range {frame_start}..{frame_end} is empty.",
            "Set an end frame at or after the start frame.",
        )
    step = max(1, scene.frame_step) * (2 if preview else 1)
    frames = tuple(range(frame_start, frame_end + 1, step))
    if len(frames) > MAX_CAMERAS:
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"The range {frame_start}..{frame_end} has {len(frames)} frames to render; at most "
            f"{MAX_CAMERAS} fit in one video.",
            "Render the range in parts, or raise the frame step.",
        )
    return PathFrames(frames, frame_end, step, *output_size(scene, preview))


def _frame_set(scene: bpy.types.Scene, time: float) -> None:
    whole = math.floor(time)
    scene.frame_set(whole, subframe=float(time - whole))


def sample_world_matrices(
    scene: bpy.types.Scene, camera: bpy.types.Object, times: np.ndarray
) -> np.ndarray:
    """The camera's matrix_world at each instant, (N, 4, 4) float64. Restores the current frame."""
    world, _ = sample_cameras(scene, camera, times)
    return world


def sample_cameras(
    scene: bpy.types.Scene,
    camera: bpy.types.Object,
    times: np.ndarray,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The camera's matrix_world (N, 4, 4) and, given an output size, its pixel intrinsics
    (N, 3, 3) at each instant (lens, sensor and shift may be animated). Restores the frame."""
    current, current_sub = scene.frame_current, scene.frame_subframe
    world = np.empty((len(times), 4, 4))
    K = None if size is None else np.empty((len(times), 3, 3))
    try:
        for i, time in enumerate(times):
            _frame_set(scene, float(time))
            world[i] = np.array(camera.matrix_world)
            if K is not None:
                K[i] = camera_intrinsics(scene, camera, *size)
    finally:
        scene.frame_set(current, subframe=current_sub)
    return world, K


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
    path: PathFrames,
) -> tuple[np.ndarray, np.ndarray]:
    """(c2w (N,4,4) OpenCV in the splat frame, K (N,3,3) at the path's size) for a render_video
    job: one camera per frame of the path."""
    if camera is None or camera.type != "CAMERA":
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA, "No camera is chosen.", "Pick a camera in the VideoScene panel."
        )
    world, K = sample_cameras(
        scene, camera, np.asarray(path.frames, np.float64), (path.width, path.height)
    )
    if len(world) > 1 and np.allclose(world, world[0], atol=1e-7):
        raise VideoSceneError(
            ErrorCode.BAD_CAMERA,
            f"Camera {camera.name!r} has no animation over frames "
            f"{path.frames[0]}..{path.frames[-1]}.",
            "Keyframe the camera along a path (or use 'Keyframe Reference Flythrough').",
        )
    splat_blender = world_to_splat(np.array(scene_empty.matrix_world), world)
    c2w = np.asarray(cameras.blender_to_opencv_c2w(splat_blender), dtype=np.float64)
    return c2w, K


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

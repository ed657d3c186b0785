"""Build Scene, Generate Video and Rebuild Scene from Video: what to send, and what to do with
the results.

Operators call start_build / start_render; the result handlers run inside client_glue.step()
(main thread) and change the Blender scene.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

from . import camera_path, preferences
from ._vendor.videoscene_protocol import cameras
from ._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ._vendor.videoscene_protocol.params import (
    BUILD_SCENE,
    FIT_SCENE,
    ID_PATTERN,
    RENDER_VIDEO,
)
from .bug_report import unexpected_error
from .client_glue import SESSION, PendingJob, scene_folder
from .compat import is_animated
from .importers.rollback import removed_on_error
from .importers.splat import import_splat
from .param_settings import params_from_settings
from .video_stream import VideoStream

COLLECTION_NAME = "VideoScene"
EMPTY_NAME = "VideoScene Scene"
SCENE_ID_KEY = "videoscene_scene_id"
PLY_KEY = "videoscene_ply"
REFERENCE_KEY = "videoscene_reference_cameras"
RENDER_JOB_KEY = "videoscene_render_job"  # the last render_video job of the empty's scene
PARENT_KEY = "videoscene_parent_scene"
SPLAT_KEY = "videoscene_splat_of"  # on a splat object: the scene id it shows
MAX_IMAGE_BYTES = 64 * 1024 * 1024


# -- Build Scene ------------------------------------------------------------------------------
PHOTO_FORMATS = "PNG, JPEG, HEIC or WebP"  # what the backend decodes (pipeline/images.py)


def fov_summary(meta: dict[str, Any]) -> str:
    """The panel's line about the field of view a build used: its value(s) and source(s)."""
    fovs = [f for f in meta.get("fov_deg_per_photo") or [meta.get("fov_deg")] if f is not None]
    if not fovs:
        return ""
    sources = meta.get("fov_sources") or [meta.get("fov_source", "?")]
    if len(set(fovs)) == 1 and len(set(sources)) == 1:
        return f"Photo FOV {fovs[0]:.1f}\u00b0 ({sources[0]})"
    values = " / ".join(f"{f:.1f}\u00b0" for f in fovs)
    return f"Photo FOV {values} ({' / '.join(sources)})"


def _read_photo(path_setting: str, label: str) -> bytes:
    if not path_setting:
        raise VideoSceneError(
            ErrorCode.BAD_IMAGE, f"{label} is not set.", "Choose two photos in the panel."
        )
    path = Path(bpy.path.abspath(path_setting))
    if not path.is_file():
        raise VideoSceneError(
            ErrorCode.BAD_IMAGE, f"{label} does not exist: {path}", "Choose an existing file."
        )
    size = path.stat().st_size
    if size == 0 or size > MAX_IMAGE_BYTES:
        raise VideoSceneError(
            ErrorCode.BAD_IMAGE,
            f"{label} is {size} bytes.",
            f"Use a {PHOTO_FORMATS} photo under 64 MB.",
        )
    return path.read_bytes()


def start_build(context: bpy.types.Context, then_render: bool = False) -> None:
    scene = context.scene
    settings = scene.videoscene
    blobs = {
        "image_0": _read_photo(settings.image_a, "Photo A"),
        "image_1": _read_photo(settings.image_b, "Photo B"),
    }
    if then_render:  # fail now, not after the build, when the path cannot be rendered
        _check_render_camera(scene)
    params = params_from_settings(settings, BUILD_SCENE)
    SESSION.submit(
        PendingJob(
            "build_scene",
            scene.name,
            on_result=_on_build_result,
            data={"then_render": then_render},
            params=params,
            blobs=blobs,
        )
    )


def _collection(scene: bpy.types.Scene) -> bpy.types.Collection:
    collection = bpy.data.collections.get(COLLECTION_NAME)
    if collection is None:
        collection = bpy.data.collections.new(COLLECTION_NAME)
    if collection.name not in scene.collection.children:
        scene.collection.children.link(collection)
    return collection


def _reference_camera(
    name: str, reference: dict[str, Any], parent: bpy.types.Object, collection
) -> bpy.types.Object:
    K = np.asarray(reference["K"], dtype=np.float64)
    params = cameras.blender_from_intrinsics(K, int(reference["width"]), int(reference["height"]))
    data = bpy.data.cameras.new(name)
    data.lens = params.lens_mm
    data.sensor_fit = params.sensor_fit
    data.sensor_width = params.sensor_width_mm
    data.sensor_height = params.sensor_height_mm
    data.shift_x, data.shift_y = params.shift_x, params.shift_y
    obj = bpy.data.objects.new(name, data)
    collection.objects.link(obj)
    obj.parent = parent
    c2w = np.asarray(reference["c2w"], dtype=np.float64)
    obj.matrix_basis = Matrix(np.asarray(cameras.opencv_to_blender_c2w(c2w)).tolist())
    obj["videoscene_resolution"] = (int(reference["width"]), int(reference["height"]))
    return obj


def import_build_result(context: bpy.types.Context, scene: bpy.types.Scene, result: Any):
    """Save the PLY, create the scene empty, the point cloud and the reference cameras."""
    meta = result.meta
    scene_id = meta.get("scene_id")
    references = meta.get("reference_cameras") or []
    if len(references) != 2:
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            f"The build result has {len(references)} reference cameras, expected 2.",
            "The backend and add-on versions may differ: update both.",
        )
    folder = scene_folder(preferences.output_dir(preferences.get(context)), scene_id)
    ply_path = folder / "scene.ply"
    ply = result.blobs.get("scene.ply")
    if ply is None:
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE, "The build result has no scene.ply.", "Update the backend."
        )
    ply_path.write_bytes(ply)

    # From here a failure removes everything this import made; the saved PLY stays on disk.
    with _import_failures(f"Importing the built scene ({ply_path})"), removed_on_error():
        collection = _collection(scene)
        empty = _scene_empty(collection, ply_path)
        empty[SCENE_ID_KEY] = scene_id
        empty[REFERENCE_KEY] = json.dumps(references)
        empty["videoscene_prior"] = str(meta.get("prior", ""))
        splat = import_splat(context, result.arrays, empty, collection)
        splat[SPLAT_KEY] = scene_id
        for index, reference in enumerate(references):
            _reference_camera(f"VideoScene Reference {index}", reference, empty, collection)
        scene.videoscene.scene_empty = empty
        context.view_layer.update()  # children's matrix_world follow the parent from here on
    return empty


def import_ply_scene(context: bpy.types.Context, path: Path, arrays: dict[str, np.ndarray]):
    """A splat from a PLY file under a new scene empty (no backend scene id: Generate Video
    builds one only from photos, so this is for viewing and path authoring)."""
    with _import_failures(f"Importing {path.name}"), removed_on_error():
        collection = _collection(context.scene)
        empty = _scene_empty(collection, path)
        import_splat(context, arrays, empty, collection, name=path.stem)
        context.view_layer.update()
    return empty


def _scene_empty(collection: bpy.types.Collection, ply_path: Path) -> bpy.types.Object:
    empty = bpy.data.objects.new(EMPTY_NAME, None)
    empty.empty_display_type = "ARROWS"
    collection.objects.link(empty)
    empty.matrix_world = Matrix(camera_path.DEFAULT_SCENE_MATRIX.tolist())
    empty[PLY_KEY] = str(ply_path)
    return empty


@contextmanager
def _import_failures(action: str) -> Iterator[None]:
    """Any failure of an import becomes a VideoScene error with a hint."""
    try:
        yield
    except VideoSceneError:
        raise
    except Exception as exc:
        raise unexpected_error(exc, action) from exc


def reference_c2ws(empty: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    references = json.loads(empty[REFERENCE_KEY])
    return (
        np.asarray(references[0]["c2w"], dtype=np.float64),
        np.asarray(references[1]["c2w"], dtype=np.float64),
    )


def _ensure_camera(scene: bpy.types.Scene) -> bpy.types.Object:
    settings = scene.videoscene
    camera = settings.active_camera(scene)
    if camera is None:
        camera = bpy.data.objects.new(
            "VideoScene Camera", bpy.data.cameras.new("VideoScene Camera")
        )
        _collection(scene).objects.link(camera)
        settings.camera = camera
        scene.camera = camera
    return camera


def keyframe_flythrough(scene: bpy.types.Scene) -> bpy.types.Object:
    """Animate the chosen camera from reference camera 0 to 1 over the frame range."""
    settings = scene.videoscene
    empty = settings.scene_empty
    if empty is None or REFERENCE_KEY not in empty:
        raise VideoSceneError(
            ErrorCode.UNKNOWN_SCENE, "No VideoScene scene is built yet.", "Run Build Scene first."
        )
    camera = _ensure_camera(scene)
    start, end = settings.frame_range(scene)
    count = max(2, end - start + 1)
    path = camera_path.reference_flythrough(*reference_c2ws(empty), count)
    camera_path.keyframe_camera_path(camera, np.array(empty.matrix_world), path, start, end)
    return camera


def _on_build_result(result: Any, job: PendingJob) -> None:
    scene = bpy.data.scenes[job.scene_name]
    context = bpy.context
    empty = import_build_result(context, scene, result)
    state = context.window_manager.videoscene_state
    state.status = f"Scene built: {result.meta.get('num_gaussians', '?')} Gaussians"
    state.fov_info = fov_summary(result.meta)
    settings = scene.videoscene
    if job.data.get("then_render"):
        camera = settings.active_camera(scene)
        start, end = settings.frame_range(scene)
        first, last = camera_path.sample_world_matrices(scene, camera, np.array([start, end]))
        empty.matrix_world = Matrix(
            camera_path.scene_matrix_for_path(*reference_c2ws(empty), first, last).tolist()
        )
        start_render(context, scene)
    elif settings.keyframe_flythrough:
        camera = settings.active_camera(scene)
        if camera is None or not is_animated(camera):
            keyframe_flythrough(scene)


# -- Generate Video ---------------------------------------------------------------------------
def _check_render_camera(scene: bpy.types.Scene) -> None:
    settings = scene.videoscene
    path = _path_frames(scene)
    identity = bpy.data.objects.new("VideoScene probe", None)  # cameras in world = splat frame
    try:
        camera_path.render_cameras(scene, settings.active_camera(scene), identity, path)
    finally:
        bpy.data.objects.remove(identity)


def _path_frames(scene: bpy.types.Scene) -> camera_path.PathFrames:
    settings = scene.videoscene
    start, end = settings.frame_range(scene)
    return camera_path.path_frames(scene, start, end, preview=settings.preview)


def start_render(context: bpy.types.Context, scene: bpy.types.Scene | None = None) -> None:
    """Generate Video: one camera per scene frame of the range at the scene's output size;
    with no scene built yet, build first (one-click). The strips grow window by window."""
    scene = scene or context.scene
    settings = scene.videoscene
    empty = settings.scene_empty
    if empty is None or SCENE_ID_KEY not in empty:
        start_build(context, then_render=True)
        return
    camera = settings.active_camera(scene)
    path = _path_frames(scene)
    c2w, K = camera_path.render_cameras(scene, camera, empty, path)
    params = {
        **params_from_settings(settings, RENDER_VIDEO),
        "scene_id": str(empty[SCENE_ID_KEY]),
        "width": path.width,
        "height": path.height,
    }
    if settings.memory_mode == "default":
        params["memory_mode"] = preferences.get(context).default_memory_mode
    SESSION.submit(
        PendingJob(
            "render_video",
            scene.name,
            on_result=_on_render_result,
            on_error=_on_render_error,
            data={"path": path, "empty": empty.name, "resent": False},
            params=params,
            arrays={"c2w": c2w, "K": K},
            on_submitted=_stream_frames,
        )
    )


def _stream_frames(job_id: str, job: PendingJob) -> None:
    """Receive the job's frames as its windows finish (video_stream.VideoStream)."""
    empty = bpy.data.objects.get(job.data["empty"])
    if empty is not None:  # what Rebuild Scene from Video fits to
        empty[RENDER_JOB_KEY] = job_id
    folder = preferences.output_dir(preferences.get()) / job_id
    SESSION.streams[job_id] = VideoStream(
        job_id, job.scene_name, folder, job.data["path"], f"VideoScene {job_id[:8]}"
    )


def _on_render_result(result: Any, job: PendingJob) -> None:
    """The job finished: fetch whatever frames are still missing, then say it is ready."""
    stream = SESSION.streams.get(result.job_id)
    if stream is not None:
        stream.on_result(result, SESSION)


def _on_render_error(error: VideoSceneError, job: PendingJob) -> bool:
    """UNKNOWN_SCENE: the backend restarted. Re-send the saved PLY and retry, once, silently."""
    if error.code != ErrorCode.UNKNOWN_SCENE or job.data.get("resent"):
        return False
    empty = bpy.data.objects.get(job.data["empty"])
    ply_path = Path(empty[PLY_KEY]) if empty is not None and PLY_KEY in empty else None
    if ply_path is None or not ply_path.is_file():
        return False

    def on_loaded(result: Any, _load_job: PendingJob) -> None:
        scene_id = str(result.meta.get("scene_id", job.params["scene_id"]))
        empty[SCENE_ID_KEY] = scene_id
        job.params["scene_id"] = scene_id
        job.data["resent"] = True
        SESSION.submit(job)

    SESSION.submit(
        PendingJob(
            "load_scene",
            job.scene_name,
            on_result=on_loaded,
            params={"scene_id": job.params["scene_id"]},
            blobs={"scene.ply": ply_path.read_bytes()},
        )
    )
    return True


# -- Rebuild Scene from Video ----------------------------------------------------------------
def render_job_id(text: str) -> str:
    """A render job's id, from the id itself or its folder (<output>/jobs/<id>, or the add-on's
    <output>/<id> frame folder): the folder's name is the id."""
    candidate = Path(text.strip()).name if text.strip() else ""
    if not ID_PATTERN.fullmatch(candidate):
        raise VideoSceneError(
            ErrorCode.UNKNOWN_JOB,
            f"{text!r:.80} names no render job.",
            "Generate Video first, or give a render job's id or its folder.",
        )
    return candidate


def start_fit(context: bpy.types.Context, render_job: str = "") -> None:
    """Fit a new scene to a render's frames (the last Generate Video of the scene empty, or
    the given job); the result replaces the splat under the same empty (_on_fit_result)."""
    scene = context.scene
    empty = scene.videoscene.scene_empty
    if empty is None or SCENE_ID_KEY not in empty:
        raise VideoSceneError(
            ErrorCode.UNKNOWN_SCENE, "No VideoScene scene is built yet.", "Run Build Scene first."
        )
    job_id = render_job_id(render_job or str(empty.get(RENDER_JOB_KEY, "")))
    SESSION.submit(
        PendingJob(
            "fit_scene",
            scene.name,
            on_result=_on_fit_result,
            on_error=_on_render_error,  # unknown_scene: re-send the PLY and retry, as renders do
            data={"empty": empty.name, "resent": False},
            params={
                **params_from_settings(scene.videoscene, FIT_SCENE),
                "scene_id": str(empty[SCENE_ID_KEY]),
                "render_job": job_id,
            },
        )
    )


def import_fit_result(context: bpy.types.Context, empty: bpy.types.Object, result: Any):
    """Save the fitted PLY, hide the splat(s) shown so far under `empty` (kept, not deleted),
    import the fitted splat under the same empty (so the path and the reference cameras stay
    aligned) and point the empty at the new scene: Generate Video then renders from it."""
    meta = result.meta
    scene_id = str(meta["scene_id"])
    ply = result.blobs.get("scene.ply")
    if ply is None or not ID_PATTERN.fullmatch(scene_id):
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            "The fit result has no scene.ply or scene id.",
            "Update the backend.",
        )
    folder = preferences.output_dir(preferences.get(context)) / "scenes" / scene_id
    folder.mkdir(parents=True, exist_ok=True)
    ply_path = folder / "scene.ply"
    ply_path.write_bytes(ply)
    shown = [c for c in empty.children if c.type != "CAMERA" and not c.hide_render]
    with _import_failures(f"Importing the fitted scene ({ply_path})"), removed_on_error():
        collection = _collection(context.scene)
        splat = import_splat(
            context, result.arrays, empty, collection, name="VideoScene Splat Fitted"
        )
        splat[SPLAT_KEY] = scene_id
        context.view_layer.update()
    for child in shown:  # after the import succeeded: a failed one leaves the scene as it was
        child.hide_viewport = True
        child.hide_render = True
    empty[PARENT_KEY] = str(meta.get("parent_scene", empty[SCENE_ID_KEY]))
    empty[SCENE_ID_KEY] = scene_id
    empty[PLY_KEY] = str(ply_path)
    return splat


def _on_fit_result(result: Any, job: PendingJob) -> None:
    empty = bpy.data.objects.get(job.data["empty"])
    if empty is None:
        raise VideoSceneError(
            ErrorCode.UNKNOWN_SCENE,
            "The scene empty the fit was for is gone.",
            f"The fitted PLY is in the job's folder ({result.job_dir}); import it by hand.",
        )
    import_fit_result(bpy.context, empty, result)
    fit = result.meta.get("fit", {})
    bpy.context.window_manager.videoscene_state.status = (
        f"Scene rebuilt: {result.meta.get('num_gaussians', '?')} Gaussians "
        f"({fit.get('seeded_gaussians', '?')} new)"
    )

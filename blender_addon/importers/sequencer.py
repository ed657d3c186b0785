"""Video frames -> PNG files -> image strips over the camera's frame range.

The video has a fixed number of samples over the frame range; each Blender frame shows the
sample nearest in time (the same file may appear on several consecutive frames).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from .._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ..camera_path import nearest_sample_indices
from ..compat import sequence_editor_strips
from .png import write_png


def write_pngs(frames: np.ndarray, folder: Path, prefix: str = "frame") -> list[Path]:
    """Write (N, H, W, 3) uint8 frames as PNGs; return the paths. Uses no bpy, so it may run on
    a worker thread."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VideoSceneError(
            ErrorCode.SHAPE_MISMATCH,
            f"Video frames have shape {frames.shape} and dtype {frames.dtype}, "
            "expected (N, H, W, 3) uint8.",
            "The backend and add-on versions may differ: update both.",
        )
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        path = folder / f"{prefix}_{index:04d}.png"
        write_png(path, frame)
        paths.append(path)
    return paths


def write_video_files(
    folder: Path, frames: np.ndarray | None, coarse: np.ndarray
) -> tuple[list[Path] | None, list[Path]]:
    """PNGs under folder/refined and folder/coarse (worker-thread safe)."""
    coarse_files = write_pngs(coarse, folder / "coarse")
    refined_files = None if frames is None else write_pngs(frames, folder / "refined")
    return refined_files, coarse_files


def _free_channel_pair(scene: bpy.types.Scene, frame_start: int, frame_end: int) -> int:
    """The lowest channel c >= 2 such that channels c and c - 1 are free over the range."""
    busy: set[int] = set()
    for strip in sequence_editor_strips(scene):
        if strip.frame_final_start <= frame_end and strip.frame_final_end > frame_start:
            busy.add(strip.channel)
    channel = 2
    while channel in busy or channel - 1 in busy:
        channel += 1
    return channel


def add_image_strip(
    scene: bpy.types.Scene,
    name: str,
    files: list[Path],
    frame_start: int,
    frame_end: int,
    channel: int,
):
    """An image strip covering [frame_start, frame_end], each frame the nearest sample."""
    indices = nearest_sample_indices(frame_start, frame_end, len(files))
    ordered = [files[i] for i in indices]
    strips = sequence_editor_strips(scene)
    strip = strips.new_image(
        name=name,
        filepath=str(ordered[0]),
        channel=channel,
        frame_start=frame_start,
        fit_method="FIT",
    )
    strip.directory = str(ordered[0].parent) + "/"
    for path in ordered[1:]:
        strip.elements.append(path.name)
    return strip


def add_video_strips(
    scene: bpy.types.Scene,
    name: str,
    refined_files: list[Path] | None,
    coarse_files: list[Path],
    frame_start: int,
    frame_end: int,
) -> tuple[object | None, object]:
    """The refined strip on top and the coarse one on the channel below (muted when a refined
    strip exists). Main thread only."""
    channel = _free_channel_pair(scene, frame_start, frame_end)
    coarse_strip = add_image_strip(
        scene, f"{name} coarse", coarse_files, frame_start, frame_end, channel - 1
    )
    refined_strip = None
    if refined_files is not None:
        refined_strip = add_image_strip(
            scene, f"{name} refined", refined_files, frame_start, frame_end, channel
        )
        coarse_strip.mute = True
    return refined_strip, coarse_strip


def import_video(
    scene: bpy.types.Scene,
    folder: Path,
    name: str,
    frames: np.ndarray | None,
    coarse: np.ndarray,
    frame_start: int,
    frame_end: int,
) -> tuple[object | None, object]:
    """Write the frames and add the strips in one go (the add-on writes on a worker thread)."""
    refined_files, coarse_files = write_video_files(folder, frames, coarse)
    return add_video_strips(scene, name, refined_files, coarse_files, frame_start, frame_end)

"""Video frames -> PNG files -> image strips over the camera's frame range.

One image per rendered scene frame: with a frame step of 1 the strip maps its images 1:1 to the
scene's frames; with a larger step each image holds until the next rendered frame. Strips grow
as the backend's windows arrive (extend_image_strip).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from .._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ..compat import sequence_editor_strips, strip_span
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


def free_channel_pair(scene: bpy.types.Scene, frame_start: int, frame_end: int) -> int:
    """The lowest channel c >= 2 such that channels c and c - 1 are free over the range."""
    busy: set[int] = set()
    for strip in sequence_editor_strips(scene):
        first, after = strip_span(strip)
        if first <= frame_end and after > frame_start:
            busy.add(strip.channel)
    channel = 2
    while channel in busy or channel - 1 in busy:
        channel += 1
    return channel


def extend_image_strip(
    scene: bpy.types.Scene,
    name: str,
    files: list[Path],
    holds: list[int],
    frame_start: int,
    channel: int,
    mute: bool = False,
):
    """Append frames to the image strip `name` (created at frame_start on `channel` when it
    does not exist yet). Each file shows for holds[i] scene frames: 1 maps images 1:1 to scene
    frames; a frame step holds each image until the next. Main thread only. Returns the strip."""
    if len(files) != len(holds) or not files:
        raise ValueError("one hold per file, at least one file")
    strips = sequence_editor_strips(scene)
    strip = strips.get(name)
    elements = [path.name for path, hold in zip(files, holds, strict=True) for _ in range(hold)]
    if strip is None:
        strip = strips.new_image(
            name=name,
            filepath=str(files[0]),
            channel=channel,
            frame_start=frame_start,
            fit_method="FIT",
        )
        strip.directory = str(files[0].parent) + "/"
        strip.mute = mute
        elements = elements[1:]
    for element in elements:
        strip.elements.append(element)
    return strip

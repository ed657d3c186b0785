"""A render job's frames arriving window by window, turned into growing sequencer strips.

The backend announces each finished window (frames_ready); the stream asks for the new frames
of each kind (refined, coarse) a range at a time, a worker thread writes the PNG bytes it gets
into the add-on's output folder as they are (no decoding), and the main thread appends the
files to the strips, so the artist sees the first seconds while the rest is generating. The
refined strip sits over the coarse one, which is muted when refined frames exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from ._vendor.videoscene_protocol.client import FramesEvent, FramesReadyEvent
from ._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from .camera_path import PathFrames
from .importers.sequencer import extend_image_strip, free_channel_pair

KINDS = ("refined", "coarse")  # drawing order: refined above coarse
# Frame numbers as the backend names them; the strip's files keep the same names.
NAME_DIGITS = 6


def frame_file(folder: Path, index: int) -> Path:
    return folder / f"{index:0{NAME_DIGITS}d}.png"


def write_frames(folder: Path, first: int, frames: list[bytes]) -> list[Path]:
    """PNG bytes -> files first.. in folder, each renamed into place (worker-thread safe)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for offset, data in enumerate(frames):
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise VideoSceneError(
                ErrorCode.BAD_MESSAGE,
                f"Frame {first + offset} from the backend is not a PNG file.",
                "The backend and add-on versions may differ: update both.",
            )
        path = frame_file(folder, first + offset)
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_bytes(data)
        os.replace(temp, path)
        paths.append(path)
    return paths


@dataclass
class VideoStream:
    job_id: str
    scene_name: str
    folder: Path
    path: PathFrames
    name: str
    kinds: list[str] = field(default_factory=list)
    ready: int = 0  # frames 0..ready-1 are finished on the backend
    requested: dict[str, int] = field(default_factory=dict)  # next frame to ask for, per kind
    in_flight: dict[str, str] = field(default_factory=dict)  # kind -> request id
    shown: dict[str, int] = field(default_factory=dict)  # frames appended to the strip, per kind
    writing: int = 0  # background writes not yet appended
    channel: int = 0
    window: int = 0
    windows: int = 0
    result: Any = None  # the job's result, once it arrived
    ended: bool = False  # the job failed or was cancelled: show what was announced, then stop
    failed: bool = False

    @property
    def total(self) -> int:
        return len(self.path.frames)

    @property
    def complete(self) -> bool:
        done = all(self.shown.get(kind, 0) >= self.ready for kind in self.kinds)
        finished = self.result is not None or self.ended
        return self.failed or (finished and done and not self.writing and not self.in_flight)

    # ---- events from the backend ---------------------------------------------------------
    def on_ready(self, event: FramesReadyEvent, session) -> None:
        self.kinds = [kind for kind in KINDS if kind in event.kinds]
        self.ready = max(self.ready, min(event.ready, self.total))
        self.window, self.windows = event.window + 1, event.windows
        _state().status = (
            f"Video: window {self.window}/{self.windows} ready "
            f"(frames 1-{self.ready} of {self.total})"
        )
        self.pump(session)

    def on_result(self, result: Any, session) -> None:
        frames = result.meta.get("frames") or {}
        self.result = result
        self.kinds = [kind for kind in KINDS if kind in frames.get("kinds", self.kinds)]
        self.ready = max(self.ready, min(int(frames.get("ready", 0)), self.total))
        self.pump(session)
        self.finish_if_complete()

    def end(self) -> None:
        self.ended = True

    def on_frames(self, event: FramesEvent, session) -> None:
        if self.in_flight.get(event.kind) == event.request_id:
            del self.in_flight[event.kind]
        if event.error is not None:
            if event.error.code == ErrorCode.NOT_READY:  # the next frames_ready brings it
                self.requested[event.kind] = event.first
                return
            self.failed = True
            session.fail(event.error)
            return
        self.requested[event.kind] = event.first + len(event.frames)
        self.writing += 1
        folder = self.folder / event.kind

        def write() -> list[Path] | Exception:
            try:
                return write_frames(folder, event.first, event.frames)
            except (OSError, VideoSceneError) as exc:  # e.g. a full disk: reported, not stuck
                return exc

        session.run_in_background(
            write, lambda paths: self._show(event.kind, event.first, paths, session)
        )
        self.pump(session)

    # ---- requests and strips -------------------------------------------------------------
    def pump(self, session) -> None:
        """Ask for the next announced frames of each kind (one request per kind at a time)."""
        client = session.client
        if client is None or self.failed:
            return
        for kind in self.kinds:
            first = self.requested.get(kind, 0)
            if kind in self.in_flight or first >= self.ready:
                continue
            count = min(client.max_fetch_frames, self.ready - first)
            self.in_flight[kind] = client.request_frames(self.job_id, first, count, kind)

    def _show(self, kind: str, first: int, paths: list[Path] | Exception, session) -> None:
        """Main thread: append the written files to the kind's strip (created on the first)."""
        self.writing -= 1
        if isinstance(paths, Exception):
            self.failed = True
            error = paths
            if not isinstance(error, VideoSceneError):
                error = VideoSceneError(
                    ErrorCode.INTERNAL,
                    f"Could not write frames to {self.folder}: {error}",
                    "Check the output folder in the add-on preferences (free space, permissions).",
                )
            session.fail(error)
            return
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None or not paths:  # the scene was deleted meanwhile; files stay on disk
            self.finish_if_complete()
            return
        if not self.channel:
            self.channel = free_channel_pair(scene, self.path.frames[0], self.path.end)
        # Where these images start: used when the strip is created (or was deleted meanwhile).
        frame_start = self.path.frames[first]
        holds = self.path.holds[first : first + len(paths)]
        refined = "refined" in self.kinds
        channel = self.channel if kind == "refined" else self.channel - 1
        extend_image_strip(
            scene,
            f"{self.name} {kind}",
            paths,
            holds,
            frame_start,
            channel,
            mute=kind == "coarse" and refined,
        )
        self.shown[kind] = first + len(paths)
        self.finish_if_complete()

    def finish_if_complete(self) -> None:
        if self.failed or self.result is None or not self.complete:
            return
        meta = self.result.meta
        refined = bool(meta.get("refined"))
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is not None:
            scene.videoscene["last_video"] = str(self.folder)
        state = _state()
        state.refine_message = "" if refined else str(meta.get("refine_message", ""))
        notes = (meta.get("photo_conditions") or {}).get("message", "")
        if notes:
            state.refine_message = notes
        state.status = (
            f"Video ready: {self.ready} frames" if refined else "Coarse video ready (not refined)"
        )


def _state() -> Any:
    return bpy.context.window_manager.videoscene_state

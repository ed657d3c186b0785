"""A job's frames on disk: one PNG per frame, written atomically, read back by frame range.

Layout inside the job's folder (`<output>/jobs/<id>/`, or `jobs/.<id>.partial/` while the job
runs):

    frames.json          {"format", "count", "width", "height", "kinds", "ready", ...}
    cameras.npz          the path: scene_id, c2w (N, 4, 4), K (N, 3, 3) (read by fit_scene)
    coarse/000000.png    the coarse render at the requested size, one file per path frame
    refined/000000.png   the video model's frames (when the job refines)

Why PNG per frame: a 1,000-frame 1080p job is ~6 GB raw; PNG is lossless and ~3x smaller,
each frame is written and renamed into place on its own (a reader never sees half a file),
any range can be read without touching the rest, and Blender shows the files as they are. The
encode is cv2's libpng at zlib level 1: ~90 ms of CPU and 1.9 MB for a 1080p frame (6.1 MB raw);
level 3 costs 1.6x that for 9 % smaller files, level 6 5x for 17 %. Frames are encoded on a few
threads (cv2 releases the GIL) with a bounded number in flight. `ready` in frames.json is the count of leading frames whose files are complete;
windows finish in path order, so the ready frames are always a prefix.

Everything from the wire (job id, kind, first, count) is checked here before any path is built.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import ID_PATTERN

MANIFEST = "frames.json"
PATH_CAMERAS = "cameras.npz"
FRAME_KINDS = ("refined", "coarse")
FORMAT = "png"
PNG_LEVEL = 1  # zlib level (see above)
WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))
MAX_FETCH_FRAMES = 64  # frames per fetch_frames reply (the wire carries at most 64 buffers)


def frame_name(index: int) -> str:
    return f"{index:06d}.png"


@dataclass
class FrameManifest:
    count: int
    width: int
    height: int
    kinds: list[str]
    ready: int = 0
    windows: int = 0

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "count": self.count,
            "width": self.width,
            "height": self.height,
            "kinds": list(self.kinds),
            "ready": self.ready,
            "windows": self.windows,
            "name": "{kind}/{index:06d}.png",
        }

    @classmethod
    def from_json(cls, data: dict) -> FrameManifest:
        return cls(
            int(data["count"]),
            int(data["width"]),
            int(data["height"]),
            [str(kind) for kind in data["kinds"]],
            int(data["ready"]),
            int(data.get("windows", 0)),
        )


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


class FrameWriter:
    """Writes a job's frames into its work folder (the handler's side)."""

    def __init__(self, folder: Path, manifest: FrameManifest) -> None:
        for kind in manifest.kinds:
            if kind not in FRAME_KINDS:
                raise ValueError(f"unknown frame kind {kind!r}")
        self.folder = folder
        self.manifest = manifest
        for kind in manifest.kinds:
            (folder / kind).mkdir(parents=True, exist_ok=True)
        self._save_manifest()

    def write_all(self, kind: str, items: Iterable[tuple[int, np.ndarray]]) -> int:
        """Encode and place frames on WRITE_THREADS threads, at most that many frames in
        flight (items may be a generator: frames are made as slots free up). Returns bytes."""
        if WRITE_THREADS == 1:
            return sum(self.write(kind, index, rgb) for index, rgb in items)
        total = 0
        pending: deque[Future[int]] = deque()
        with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="frame-writer") as pool:
            for index, rgb in items:
                if len(pending) >= WRITE_THREADS:
                    total += pending.popleft().result()
                pending.append(pool.submit(self.write, kind, index, rgb))
            while pending:
                total += pending.popleft().result()
        return total

    def write(self, kind: str, index: int, rgb: np.ndarray) -> int:
        """Encode and place one frame; returns the file's size in bytes."""
        expected = (self.manifest.height, self.manifest.width, 3)
        if rgb.shape != expected or rgb.dtype != np.uint8:
            raise ValueError(f"frame {index} is {rgb.shape} {rgb.dtype}, expected {expected} uint8")
        if kind not in self.manifest.kinds or not 0 <= index < self.manifest.count:
            raise ValueError(f"no slot for {kind} frame {index}")
        ok, encoded = cv2.imencode(
            ".png",
            cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL],
        )
        if not ok:
            raise RuntimeError(f"PNG encoding of frame {index} failed")
        _write_atomically(self.folder / kind / frame_name(index), encoded.tobytes())
        return int(encoded.size)

    def mark_ready(self, ready: int, windows: int) -> None:
        """Frames [0, ready) are complete in every kind (after their files are in place)."""
        self.manifest.ready = ready
        self.manifest.windows = windows
        self._save_manifest()

    def _save_manifest(self) -> None:
        data = json.dumps(self.manifest.to_json(), indent=1).encode()
        _write_atomically(self.folder / MANIFEST, data)


def write_path_cameras(
    folder: Path,
    scene_id: str,
    c2w: np.ndarray,
    K: np.ndarray,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> None:
    """The cameras a render job's frames were made with (and the background its coarse frames
    show where the scene is empty), so a later fit can use them."""
    temp = folder / f".{PATH_CAMERAS}.tmp"
    with temp.open("wb") as file:
        np.savez(file, scene_id=np.array(scene_id), c2w=c2w, K=K, background=np.asarray(background))
    os.replace(temp, folder / PATH_CAMERAS)


def read_path_cameras(folder: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(scene_id, c2w, K) of a render job's folder; KeyError/OSError/ValueError when absent
    or damaged."""
    with np.load(folder / PATH_CAMERAS, allow_pickle=False) as data:
        return str(data["scene_id"]), np.asarray(data["c2w"]), np.asarray(data["K"])


def read_path_background(folder: Path) -> tuple[float, float, float]:
    """The background a render job's frames show where its scene is empty (black for a job
    saved before it was recorded, or when the record is not three finite values in 0..1)."""
    with np.load(folder / PATH_CAMERAS, allow_pickle=False) as data:
        if "background" not in data.files:
            return (0.0, 0.0, 0.0)
        value = np.asarray(data["background"], dtype=np.float64).reshape(-1)
    if value.shape != (3,) or not np.all(np.isfinite(value)) or value.min() < 0 or value.max() > 1:
        return (0.0, 0.0, 0.0)
    return (float(value[0]), float(value[1]), float(value[2]))


# ---- the service's side: ranges for fetch_frames -------------------------------------------
@dataclass
class FrameRange:
    kind: str
    first: int
    frames: list[bytes]  # PNG file bytes, frames first .. first + len - 1
    manifest: FrameManifest


def check_range_request(job_id: object, body: object) -> tuple[str, str, int, int]:
    """(job id, kind, first, count) of a fetch_frames message, or BAD_PARAMS / BAD_MESSAGE."""
    if not isinstance(job_id, str) or not ID_PATTERN.fullmatch(job_id):
        raise VideoSceneError(
            ErrorCode.BAD_MESSAGE,
            "fetch_frames needs the job_id of a render_video job.",
            "Send the id the job was submitted with.",
        )
    if not isinstance(body, dict):
        raise VideoSceneError(ErrorCode.BAD_MESSAGE, "fetch_frames body must be an object.")
    kind, first, count = body.get("kind"), body.get("first"), body.get("count")
    if kind not in FRAME_KINDS:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"fetch_frames kind must be one of {', '.join(FRAME_KINDS)}.",
            "Ask for 'refined' or 'coarse' frames.",
        )
    for name, value, low in (("first", first, 0), ("count", count, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"fetch_frames {name} must be an integer >= {low}.",
                f"Ask for at most {MAX_FETCH_FRAMES} frames from a frame index.",
            )
    if count > MAX_FETCH_FRAMES:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"fetch_frames asks for {count} frames; at most {MAX_FETCH_FRAMES} per request.",
            "Fetch long ranges in several requests.",
        )
    return job_id, kind, first, count


def frames_folder(candidates: Sequence[Path]) -> Path | None:
    """The first candidate holding frames: the service passes the finished job's folder, then
    the running job's, both built and checked by its results module."""
    for folder in candidates:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def read_manifest(folder: Path) -> FrameManifest:
    try:
        return FrameManifest.from_json(json.loads((folder / MANIFEST).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VideoSceneError(
            ErrorCode.INTERNAL,
            f"The frame index of this job is unreadable: {exc}",
            "The job's folder was changed by hand; run the job again.",
        ) from exc


def read_range(
    candidates: Sequence[Path], kind: str, first: int, count: int, max_bytes: int
) -> FrameRange:
    """Up to `count` ready frames from `first` (checked arguments, see check_range_request) of
    the first candidate folder with frames, fewer when their files exceed max_bytes (never
    fewer than one)."""
    for attempt in range(2):  # the running job's folder may be renamed into place meanwhile
        folder = frames_folder(candidates)
        if folder is None:
            raise VideoSceneError(
                ErrorCode.UNKNOWN_JOB,
                "This job has no frames.",
                "Only render_video jobs have frames; a queued job has none yet.",
            )
        try:
            return _read_from(folder, kind, first, count, max_bytes)
        except FileNotFoundError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def _read_from(folder: Path, kind: str, first: int, count: int, max_bytes: int) -> FrameRange:
    manifest = read_manifest(folder)
    if kind not in manifest.kinds:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"This job has no {kind} frames (it has {', '.join(manifest.kinds)}).",
            "A job that was not refined has only coarse frames.",
        )
    if first + count > manifest.count:
        raise VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"Frames {first}..{first + count - 1} are outside the job's {manifest.count} frames.",
            f"Ask for frames 0..{manifest.count - 1}.",
        )
    if first >= manifest.ready:
        raise VideoSceneError(
            ErrorCode.NOT_READY,
            f"Frame {first} is not ready yet ({manifest.ready} of {manifest.count} are).",
            "Wait for the frames_ready event that covers it.",
        )
    frames: list[bytes] = []
    total = 0
    for index in range(first, min(first + count, manifest.ready)):
        path = folder / kind / frame_name(index)
        size = path.stat().st_size
        if frames and total + size > max_bytes:
            break
        frames.append(path.read_bytes())
        total += size
    return FrameRange(kind, first, frames, manifest)


def decode_frame(data: bytes | memoryview) -> np.ndarray:
    """PNG bytes (as fetch_frames returns them) -> (H, W, 3) uint8 RGB."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a PNG frame")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_frames(folder: Path, kind: str, first: int = 0, count: int | None = None) -> np.ndarray:
    """Decoded frames of a job folder (tests and tools; the service sends the PNG bytes)."""
    manifest = read_manifest(folder)
    stop = manifest.ready if count is None else first + count
    return np.stack(
        [decode_frame((folder / kind / frame_name(i)).read_bytes()) for i in range(first, stop)]
    )

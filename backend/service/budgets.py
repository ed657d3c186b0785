"""What one job, one client and the disk may take: each limit declared once here (default, flag,
meaning); `serve`'s flags, the service's checks and docs/protocol.md's table come from LIMITS.

A render-like job's size is its pixels: frames x width x height, where the frames are the rows
of its camera array (`c2w`) and width/height its params (RENDER_LIKE lists the kinds; a new one
such as a fitting job adds its name). Disk is estimated from the pixels: two PNG files per frame
(refined and coarse) at up to PNG_BYTES_PER_PIXEL each.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from videoscene_protocol.errors import ErrorCode, VideoSceneError

RENDER_LIKE = {"render_video": "c2w"}  # job kind -> the array whose rows are its frames
FRAME_FILES_PER_PIXEL = 2  # refined + coarse PNG per frame
PNG_BYTES_PER_PIXEL = 1.5  # measured ~0.9 at zlib level 1 on renders; headroom for noisy frames
MIB = 1 << 20


@dataclass(frozen=True)
class Limit:
    flag: str
    default: float
    unit: str
    meaning: str


@dataclass(frozen=True)
class Budgets:
    """The service's limits (0 turns one off). Field names are the flags without `--`."""

    max_job_megapixels: float = 4000.0  # ~2,000 frames of 1080p, ~12 GB of PNGs
    min_free_disk_mib: float = 1024.0
    max_job_seconds: float = 4 * 3600.0
    keep_days: float = 7.0
    max_queued_input_mib: float = 4096.0

    def job_pixels(self, kind: str, params: dict[str, Any], arrays: dict[str, Any]) -> int:
        frames_array = RENDER_LIKE.get(kind)
        cameras = arrays.get(frames_array) if frames_array else None
        if cameras is None:
            return 0
        width, height = int(params.get("width", 0) or 0), int(params.get("height", 0) or 0)
        return int(np.shape(cameras)[0] if np.ndim(cameras) else 0) * width * height

    def check_submit(
        self, kind: str, params: dict[str, Any], arrays: dict[str, Any], output_dir: Path
    ) -> None:
        """Refuse a job over the pixel budget, or one whose frames the disk cannot hold."""
        pixels = self.job_pixels(kind, params, arrays)
        if self.max_job_megapixels and pixels > self.max_job_megapixels * 1e6:
            raise VideoSceneError(
                ErrorCode.OVER_BUDGET,
                f"This job renders {pixels / 1e6:,.0f} megapixels (frames x width x height), "
                f"over the server's budget of {self.max_job_megapixels:,.0f}.",
                "Render fewer frames or a smaller size (Preview halves both), or split the path; "
                "the server's admin sets --max-job-megapixels.",
            )
        needed = pixels * FRAME_FILES_PER_PIXEL * PNG_BYTES_PER_PIXEL
        self.check_disk(output_dir, needed)

    def check_disk(self, output_dir: Path, needed_bytes: float = 0.0) -> None:
        """Free space for `needed_bytes` more, keeping min_free_disk_mib free."""
        if not self.min_free_disk_mib and not needed_bytes:
            return
        free = shutil.disk_usage(output_dir).free
        wanted = needed_bytes + self.min_free_disk_mib * MIB
        if free < wanted:
            raise VideoSceneError(
                ErrorCode.DISK_FULL,
                f"The backend's disk has {free / MIB:,.0f} MiB free; this needs "
                f"{wanted / MIB:,.0f} MiB (its frames plus {self.min_free_disk_mib:,.0f} MiB kept "
                "free).",
                "Render fewer or smaller frames, or ask the server's admin to free space "
                "(old jobs go after --keep-days) or lower --min-free-disk-mib.",
            )

    def time_limit_error(self, elapsed_s: float) -> VideoSceneError:
        return VideoSceneError(
            ErrorCode.TIME_LIMIT,
            f"The job ran {elapsed_s:,.0f} s, past the server's limit of "
            f"{self.max_job_seconds:,.0f} s; the frames it finished stay fetchable.",
            "Split the path into shorter jobs, or ask the server's admin for a longer "
            "--max-job-seconds.",
        )

    def over_time(self, elapsed_s: float) -> bool:
        return bool(self.max_job_seconds) and elapsed_s > self.max_job_seconds


LIMITS: dict[str, Limit] = {
    "max_job_megapixels": Limit(
        "--max-job-megapixels",
        Budgets.max_job_megapixels,
        "megapixels",
        "a render-like job's frames x width x height (`over_budget`)",
    ),
    "min_free_disk_mib": Limit(
        "--min-free-disk-mib",
        Budgets.min_free_disk_mib,
        "MiB",
        "free space kept on the output disk: a job whose frames (2 PNGs, up to 1.5 B/px each) "
        "would not fit is refused at submit, and a running one stops after a window (`disk_full`)",
    ),
    "max_job_seconds": Limit(
        "--max-job-seconds",
        Budgets.max_job_seconds,
        "s",
        "wall time of one job once it runs (`time_limit`)",
    ),
    "keep_days": Limit(
        "--keep-days",
        Budgets.keep_days,
        "days",
        "finished jobs' folders older than this are removed (at start-up and hourly)",
    ),
    "max_queued_input_mib": Limit(
        "--max-queued-input-mib",
        Budgets.max_queued_input_mib,
        "MiB",
        "the inputs (photos, PLYs, cameras) of all waiting jobs held in memory (`queue_full`)",
    ),
}
assert set(LIMITS) == {field.name for field in fields(Budgets)}


def input_bytes(arrays: dict[str, Any], blobs: dict[str, Any]) -> int:
    return sum(int(np.asarray(a).nbytes) for a in arrays.values()) + sum(
        len(b) for b in blobs.values()
    )


def markdown_table() -> str:
    rows = [
        f"| `{limit.flag}` | {limit.default:g} {limit.unit} | {limit.meaning} |"
        for limit in LIMITS.values()
    ]
    return "\n".join(["| flag | default | limits |", "|---|---|---|", *rows])

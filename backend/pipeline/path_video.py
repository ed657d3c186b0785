"""render_video's work, window by window, in memory that does not grow with the path.

For each window of the plan (backend/video/windows.py):
1. render the coarse frames the window delivers at the requested size and write them;
2. (refining) render the window's F cameras on the model canvas with the covering intrinsics
   (backend/video/canvas.py), refine them with the window's condition frames, cut each
   delivered frame back to the requested view and write it;
3. mark the window's frames ready and tell the client (a frames_ready event);
then drop the window. Only the refined seam frame (one canvas image) is carried to the next
window, as its first condition. At any time the job holds one window's canvas frames (model
input and output) plus one render batch, whatever the path's length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..render import render, to_uint8
from ..scene.flythrough import interpolate_path
from ..scene.gaussians import GaussianScene
from ..video.canvas import CanvasFit, fit_canvas
from ..video.windows import Window, describe, plan_blocks, plan_windows
from .contract import JobContext
from .frame_store import FrameManifest, FrameWriter

RENDER_BATCH = 4
# Without the video model the coarse frames still stream in windows of the real model's length.
COARSE_WINDOW_FRAMES = 49


@dataclass
class PathRequest:
    c2w: np.ndarray  # (N, 4, 4) OpenCV camera-to-world in the splat frame
    K: np.ndarray  # (N, 3, 3) pixel intrinsics at width x height
    width: int
    height: int
    background: tuple[float, float, float]
    near: float
    far: float

    @property
    def count(self) -> int:
        return len(self.c2w)


@dataclass
class Refinement:
    """What the refining windows need: the loaded model, its options and photo conditions."""

    refiner: Any  # videoscene_backend.video.refiner.VideoRefiner
    options: Any  # RefineOptions
    photos: list | None = None  # [ReferencePhoto A, B] for condition_source "photos"


@dataclass
class PathVideoReport:
    windows: list[Window]
    model_frames: int
    fit: CanvasFit | None
    timings: dict[str, float] = field(default_factory=dict)
    window_seconds: list[float] = field(default_factory=list)
    refine_timings: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    sampler: dict[str, Any] = field(default_factory=dict)
    photo_coverage: dict[str, float] = field(default_factory=dict)
    bytes_written: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)  # frames.json as written last

    def meta(self) -> dict[str, Any]:
        return {
            "frames": self.manifest,
            "windowing": describe(self.windows, self.model_frames, chained=self.fit is not None),
            "canvas": None if self.fit is None else self.fit.describe(),
            "window_seconds": [round(s, 3) for s in self.window_seconds],
            "bytes_written": self.bytes_written,
        }


class PathVideo:
    def __init__(
        self,
        ctx: JobContext,
        scene: GaussianScene,
        request: PathRequest,
        refinement: Refinement | None,
        device: torch.device,
    ) -> None:
        self.ctx = ctx
        self.scene = scene
        self.request = request
        self.refinement = refinement
        self.device = device
        refiner = refinement.refiner if refinement else None
        model_frames = refiner.num_frames if refiner else COARSE_WINDOW_FRAMES
        self.windows = (
            plan_windows(request.count, model_frames)
            if refiner
            else plan_blocks(request.count, model_frames)
        )
        self.fit = (
            fit_canvas(request.width, request.height, refiner.width, refiner.height)
            if refiner
            else None
        )
        self.report = PathVideoReport(self.windows, model_frames, self.fit)
        kinds = ["refined", "coarse"] if refiner else ["coarse"]
        self.writer = FrameWriter(
            ctx.work_dir,
            FrameManifest(request.count, request.width, request.height, kinds),
        )

    # ---- the loop --------------------------------------------------------------------------
    def run(self) -> PathVideoReport:
        timings = self.report.timings
        for key in ("render", "refine", "write"):
            timings[key] = 0.0
        seam: np.ndarray | None = None
        gpu_scene = self.scene.to(self.device)
        try:
            for window in self.windows:
                started = time.perf_counter()
                self.ctx.check_cancelled()
                if self.refinement is None:
                    self._coarse_outputs(gpu_scene, window)
                else:
                    seam = self._refined_window(gpu_scene, window, seam)
                self.writer.mark_ready(window.last_output + 1, window.index + 1)
                self._announce(window)
                self.report.window_seconds.append(time.perf_counter() - started)
        finally:
            del gpu_scene
        self.report.manifest = self.writer.manifest.to_json()
        return self.report

    def _announce(self, window: Window) -> None:
        count = len(self.windows)
        first, last = window.first_output, window.last_output
        self.ctx.progress(
            "write",
            (window.index + 1) / count,
            f"window {window.index + 1}/{count}: frames {first + 1}-{last + 1} ready",
        )
        self.ctx.frames_ready(
            {
                "first": first,
                "count": last - first + 1,
                "ready": last + 1,
                "total": self.request.count,
                "window": window.index,
                "windows": count,
                "kinds": list(self.writer.manifest.kinds),
                "width": self.request.width,
                "height": self.request.height,
            }
        )

    # ---- one window ------------------------------------------------------------------------
    def _coarse_outputs(self, gpu_scene: GaussianScene, window: Window) -> None:
        """Render and write the coarse frames the window delivers, one batch at a time."""
        frames = [frame for frame, _ in window.outputs]
        request = self.request
        for start in range(0, len(frames), RENDER_BATCH):
            batch = frames[start : start + RENDER_BATCH]
            images = self._render(
                gpu_scene, request.c2w[batch], request.K[batch], request.width, request.height
            )
            self._write("coarse", batch, images)
            self._render_progress(window, start + len(batch), len(frames))

    def _refined_window(
        self, gpu_scene: GaussianScene, window: Window, seam: np.ndarray | None
    ) -> np.ndarray:
        refinement, fit, request = self.refinement, self.fit, self.request
        refiner = refinement.refiner
        c2w, K = interpolate_path(request.c2w, request.K, window.positions)
        canvas_K = fit.canvas_intrinsics(K)
        canvas = np.empty((len(c2w), refiner.height, refiner.width, 3), np.uint8)
        for start in range(0, len(c2w), RENDER_BATCH):
            stop = min(start + RENDER_BATCH, len(c2w))
            canvas[start:stop] = self._render(
                gpu_scene, c2w[start:stop], canvas_K[start:stop], refiner.width, refiner.height
            )
            self._render_progress(window, stop, len(c2w))
        if fit.is_identity:  # the canvas render is the coarse frame at the requested size
            self._write(
                "coarse", [f for f, _ in window.outputs], canvas[[m for _, m in window.outputs]]
            )
        else:
            self._coarse_outputs(gpu_scene, window)

        first, last = self._conditions(window, canvas, canvas_K, seam)
        started = time.perf_counter()
        label = f"window {window.index + 1}/{len(self.windows)}"

        def progress(stage: str, fraction: float, message: str = "") -> None:
            self.ctx.progress(stage, fraction, message or label)

        refined, report = refiner.refine(
            canvas, first, last, refinement.options, progress, self.ctx.check_cancelled
        )
        del canvas
        self.report.timings["refine"] += time.perf_counter() - started
        for stage, seconds in report.timings.items():
            self.report.refine_timings[stage] = self.report.refine_timings.get(stage, 0.0) + seconds
        self.report.sampler = dict(report.sampler)  # the same for every window
        if report.peak_memory_bytes is not None:
            self.report.peak_memory_bytes = max(
                self.report.peak_memory_bytes or 0, report.peak_memory_bytes
            )
        frames = [frame for frame, _ in window.outputs]
        # One output-size frame at a time: a window of 1080p frames would be ~300 MB.
        self._write("refined", frames, (fit.cut_back(refined[m]) for _, m in window.outputs))
        return refined[window.outputs[-1][1]].copy()  # the next window's first condition

    def _conditions(
        self, window: Window, canvas: np.ndarray, canvas_K: np.ndarray, seam: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """First and last condition frames on the canvas. First: the previous window's refined
        seam frame, or for the first window photo A (photos) or the first render. Last: photo B
        for the last window (photos), else the window's last render."""
        photos = self.refinement.photos
        is_last = window.index == len(self.windows) - 1
        if seam is not None:
            first = seam
        elif photos:
            first, self.report.photo_coverage["first"] = photos[0].on_canvas(canvas_K[0], canvas[0])
        else:
            first = canvas[0]
        if photos and is_last:
            last, self.report.photo_coverage["last"] = photos[1].on_canvas(canvas_K[-1], canvas[-1])
        else:
            last = canvas[-1]
        return first, last

    # ---- helpers ---------------------------------------------------------------------------
    def _render(
        self, gpu_scene: GaussianScene, c2w: np.ndarray, K: np.ndarray, width: int, height: int
    ) -> np.ndarray:
        self.ctx.check_cancelled()
        started = time.perf_counter()
        request = self.request
        with torch.no_grad():
            out = render(
                gpu_scene,
                torch.from_numpy(np.ascontiguousarray(c2w)),
                torch.from_numpy(np.ascontiguousarray(K)),
                width,
                height,
                background=request.background,
                near=request.near,
                far=request.far,
                check_cancelled=self.ctx.check_cancelled,  # within the batch: per frame, tiles
            )
        images = to_uint8(out.images)
        self.report.timings["render"] += time.perf_counter() - started
        return images

    def _render_progress(self, window: Window, done: int, total: int) -> None:
        count = len(self.windows)
        self.ctx.progress(
            "render",
            (window.index + done / total) / count,
            f"window {window.index + 1}/{count}: {done}/{total} frames",
        )

    def _write(self, kind: str, frames: list[int], images: Iterable[np.ndarray]) -> None:
        started = time.perf_counter()
        self.report.bytes_written += self.writer.write_all(kind, zip(frames, images, strict=True))
        self.report.timings["write"] += time.perf_counter() - started

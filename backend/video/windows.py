"""Which model window makes which output frame: the window policy of render_video.

The video model refines F frames at a time (49 for the real model; the loaded config decides).
A path of N cameras gets one output frame per camera:

- N >= F: chained windows of F consecutive cameras. Window k starts at k (F - 1), so windows
  share their boundary camera (stride F - 1); the last window is aligned to the end of the path
  (it starts at N - F and may overlap the one before it by more than one frame). Window k
  delivers the path frames after its first camera up to the next window's first camera
  (window 0 also delivers its first): every frame comes from exactly one window, and each seam
  frame (the first camera of window k + 1) is the last frame window k delivers. Window k + 1's
  first condition frame is that refined seam frame, so the video is continuous across seams.
- N < F: one window of F instants sampled along the path: the requested cameras sit on model
  frames round(i (F - 1) / (N - 1)) and the instants between them are interpolated; exactly the
  requested frames come back. N = 1 is a still: every instant is the one camera.

Pure and torch-free: the stage, the tests and the docs read the same plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """One model window.

    positions: the F path positions the model frames show (path frame indices; fractional ones
        are interpolated cameras, only for paths shorter than F).
    outputs: (path frame, model frame) for every output frame this window delivers, in order.
    seam: the path frame whose refined image conditions this window's first model frame (the
        last frame the previous window delivered), or None for the first window.
    """

    index: int
    positions: tuple[float, ...]
    outputs: tuple[tuple[int, int], ...]
    seam: int | None

    @property
    def first_output(self) -> int:
        return self.outputs[0][0]

    @property
    def last_output(self) -> int:
        return self.outputs[-1][0]

    @property
    def camera_frames(self) -> tuple[int, ...]:
        """The path frames this window's positions need (for interpolation, both neighbours)."""
        needed: set[int] = set()
        for position in self.positions:
            needed.update({math.floor(position), math.ceil(position)})
        return tuple(sorted(needed))


def window_count(num_frames: int, model_frames: int) -> int:
    _check(num_frames, model_frames)
    if num_frames <= model_frames:
        return 1
    return math.ceil((num_frames - 1) / (model_frames - 1))


def window_starts(num_frames: int, model_frames: int) -> list[int]:
    """First path frame of each window (paths of at least F frames)."""
    count = window_count(num_frames, model_frames)
    last_start = max(num_frames - model_frames, 0)
    return [min(k * (model_frames - 1), last_start) for k in range(count)]


def plan_windows(num_frames: int, model_frames: int) -> list[Window]:
    """The windows for a path of num_frames cameras and a model of model_frames frames."""
    _check(num_frames, model_frames)
    if num_frames < model_frames:
        return [_short_window(num_frames, model_frames)]
    starts = window_starts(num_frames, model_frames)
    windows = []
    for k, start in enumerate(starts):
        first = start if k == 0 else start + 1
        last = starts[k + 1] if k + 1 < len(starts) else num_frames - 1
        windows.append(
            Window(
                index=k,
                positions=tuple(float(start + j) for j in range(model_frames)),
                outputs=tuple((frame, frame - start) for frame in range(first, last + 1)),
                seam=None if k == 0 else start,
            )
        )
    return windows


def plan_blocks(num_frames: int, block_frames: int) -> list[Window]:
    """Consecutive, non-overlapping blocks of block_frames (the last may be shorter): how the
    coarse frames stream when no model refines them."""
    _check(num_frames, block_frames)
    return [
        Window(
            index=k,
            positions=tuple(float(f) for f in range(start, min(start + block_frames, num_frames))),
            outputs=tuple(
                (f, f - start) for f in range(start, min(start + block_frames, num_frames))
            ),
            seam=None,
        )
        for k, start in enumerate(range(0, num_frames, block_frames))
    ]


def _short_window(num_frames: int, model_frames: int) -> Window:
    if num_frames == 1:
        return Window(0, (0.0,) * model_frames, ((0, 0),), None)
    anchors = [round(i * (model_frames - 1) / (num_frames - 1)) for i in range(num_frames)]
    positions = []
    for i in range(num_frames - 1):
        begin, end = anchors[i], anchors[i + 1]
        positions += [i + (j - begin) / (end - begin) for j in range(begin, end)]
    positions.append(float(num_frames - 1))
    outputs = tuple((i, anchor) for i, anchor in enumerate(anchors))
    return Window(0, tuple(positions), outputs, None)


CHAINED_POLICY = (
    "chained windows of the model's F frames sharing their boundary frame (stride F-1), the "
    "last aligned to the path's end, each window's first frame conditioned on the previous "
    "window's refined last frame; paths shorter than F are sampled up to F instants"
)
BLOCK_POLICY = "coarse frames only: consecutive blocks of F frames, no model"


def describe(windows: list[Window], model_frames: int, chained: bool = True) -> dict:
    """The plan in the result metadata: window count, seams, each window's path span."""
    return {
        "model_frames": model_frames,
        "windows": len(windows),
        "seams": [w.seam for w in windows if w.seam is not None],
        "spans": [[w.positions[0], w.positions[-1]] for w in windows],
        "policy": CHAINED_POLICY if chained else BLOCK_POLICY,
    }


def _check(num_frames: int, model_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"a path needs at least one frame, got {num_frames}")
    if model_frames < 2:
        raise ValueError(f"the model needs at least two frames per window, got {model_frames}")

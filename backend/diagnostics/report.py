"""What `videoscene-backend check --gpu` found: a table for the terminal, one JSON object for
the `--json` line, the saved file and the add-on's Check GPU."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

FIT = "fit"
OUT_OF_MEMORY = "out of memory"
SKIPPED = "skipped"
INTERRUPTED = "interrupted"
FAILED = "failed"
RANDOM, REAL = "random", "real"
GIB = 1 << 30
HEADROOM = 1.1  # a suggested auto threshold: the measured peak plus 10 %
WINDOW_STAGES = ("encode", "denoise", "decode")


def gib(value: float | int | None) -> float | None:
    return None if value is None else round(value / GIB, 2)


@dataclass
class ModeResult:
    """One window of the video model in one memory mode."""

    mode: str
    weights: str  # RANDOM | REAL
    status: str  # FIT | OUT_OF_MEMORY | SKIPPED | INTERRUPTED | FAILED
    stages_s: dict[str, float] = field(default_factory=dict)  # build (or load) and the window's
    window_s: float | None = None  # encode .. decode, what each window of a job costs
    peak_gib: float | None = None  # CUDA only
    failed_stage: str | None = None
    note: str = ""

    @property
    def fits(self) -> bool:
        return self.status == FIT


@dataclass
class GpuCheckReport:
    device: str  # the GPU's name, or "cpu"
    cuda: bool
    window: str  # "49x480x720"
    real_size: bool  # False: a scaled-down config (tests)
    total_gib: float | None = None
    free_gib_at_start: float | None = None
    parameter_counts: dict[str, int] = field(default_factory=dict)
    video_note: str = ""  # why the video model was not measured
    modes: list[ModeResult] = field(default_factory=list)
    auto_mode: str | None = None
    auto_fits: bool | None = None
    recommended_mode: str | None = None
    recommendation: str = ""
    auto_thresholds_gib: dict[str, float] = field(default_factory=dict)
    prior: dict[str, Any] = field(default_factory=dict)
    render: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    saved_to: str | None = None

    @property
    def video_model_runs(self) -> bool:
        return self.recommended_mode is not None

    def suggested_auto_thresholds_gib(self) -> dict[str, float]:
        """Each random-weight mode that fit: its measured peak plus HEADROOM, rounded up."""
        return {
            m.mode: math.ceil(m.peak_gib * HEADROOM)
            for m in self.modes
            if m.fits and m.weights == RANDOM and m.peak_gib is not None
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["check"] = "gpu"
        data["weights"] = "random values of the real shapes, unless a row says real"
        data["video_model_runs"] = self.video_model_runs
        data["suggested_auto_thresholds_gib"] = self.suggested_auto_thresholds_gib()
        return data

    def json_line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    # ---- the table -------------------------------------------------------------------------
    def format_table(self) -> str:
        lines = [self._header(), ""]
        lines += self._video_lines()
        lines += ["", *self._other_lines()]
        if self.errors:
            lines += ["", "Errors:", *(f"  {e}" for e in self.errors)]
        if self.interrupted:
            lines += ["", "INTERRUPTED (Ctrl-C): the figures above are what was measured so far."]
        lines.append(
            f"\nTook {self.elapsed_s:.0f} s."
            + (f" Saved: {self.saved_to}" if self.saved_to else "")
        )
        return "\n".join(lines)

    def _header(self) -> str:
        size = "real size" if self.real_size else "SCALED-DOWN test config, not the real size"
        if not self.cuda:
            return f"VideoScene GPU check on {self.device} (no CUDA GPU), {size}"
        return (
            f"VideoScene GPU check on {self.device}: {self.total_gib:.1f} GiB, "
            f"{self.free_gib_at_start:.1f} GiB free at the start; {size}"
        )

    def _video_lines(self) -> list[str]:
        lines = [
            f"Video model: one window of {self.window} (frames x height x width: encode, one "
            "denoise step, decode), random weights of the published shapes unless marked real"
        ]
        if self.parameter_counts:
            counts = ", ".join(f"{k} {v:,}" for k, v in self.parameter_counts.items())
            lines.append(f"  parameters: {counts}")
        if self.video_note:
            lines.append(f"  {self.video_note}")
        if self.modes:
            head = f"  {'mode':<9}{'weights':<8}{'result':<15}{'peak GiB':>9}{'build s':>9}"
            head += "".join(f"{s + ' s':>11}" for s in WINDOW_STAGES) + f"{'window s':>10}"
            lines.append(head)
            for m in self.modes:
                build = m.stages_s.get("build", m.stages_s.get("load"))
                row = f"  {m.mode:<9}{m.weights:<8}{m.status:<15}{_num(m.peak_gib, 9)}{_num(build, 9)}"
                row += "".join(_num(m.stages_s.get(s), 11) for s in WINDOW_STAGES)
                row += _num(m.window_s, 10)
                if m.failed_stage:
                    row += f"  (at {m.failed_stage})"
                if m.note:
                    row += f"  {m.note}"
                lines.append(row)
        if self.recommendation:
            lines += ["", f"Recommendation: {self.recommendation}"]
        return lines

    def _other_lines(self) -> list[str]:
        lines = []
        for key, title in (("prior", "NoPoSplat prior"), ("render", "Rendering"), ("fit", "Fit")):
            section = getattr(self, key)
            if section.get("summary"):
                lines.append(f"{title}: {section['summary']}")
            elif section.get("status"):
                lines.append(f"{title}: {section['status']}")
        return lines


def _num(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.2f}"

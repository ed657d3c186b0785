"""Every job's parameters, declared once.

A `JobSpec` lists a job kind's `Param`s: name, kind of value, default, range or choices and a doc
line. Everything else is derived from these declarations:
- the backend's checks: `validate_params(kind, params)` runs at submit and again at the top of
  each handler (idempotent), before any work;
- the Blender add-on's settings (blender_addon/properties.py builds its properties from them);
- the `videoscene-backend run` flags (backend/param_flags.py);
- the parameter tables of docs/protocol.md (tests/protocol/test_params.py compares them with
  `markdown_table`; `python -m videoscene_protocol.params` prints them).
Standard library only: the add-on vendors this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorCode, VideoSceneError

# Scene ids (and job ids) name folders and keys: a fixed character set, checked before use.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
ID_RULE = "1-64 characters from A-Z a-z 0-9 _ -"
VALUE_KINDS = ("bool", "int", "float", "choice", "color", "id")
# Cameras per render_video job (one output frame each); the backend checks, the add-on too.
MAX_CAMERAS = 10_000


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    doc: str


@dataclass(frozen=True)
class Param:
    """One job parameter. `kind` is one of VALUE_KINDS; a nullable param accepts null, whose
    meaning `null_doc` states (the add-on shows it as an "Auto" toggle)."""

    name: str
    kind: str
    default: Any
    doc: str
    label: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Choice, ...] = ()
    nullable: bool = False
    null_doc: str = ""
    required: bool = False
    # An artist's setting in the add-on panel; False for what the add-on fills in itself.
    setting: bool = True
    # For nullable numbers: the value the add-on offers when its Auto toggle is switched off.
    manual_default: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in VALUE_KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice param needs choices")

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(choice.value for choice in self.choices)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").title()

    def describe(self) -> str:
        """The allowed values in words, e.g. "an integer from 0 to 999 or null"."""
        span = ""
        if self.minimum is not None and self.maximum is not None:
            span = f" from {_number(self.minimum)} to {_number(self.maximum)}"
        text = {
            "bool": "true or false",
            "int": f"an integer{span}",
            "float": f"a number{span}",
            "choice": "one of " + ", ".join(repr(v) for v in self.values),
            "color": "[r, g, b] with each value from 0 to 1",
            "id": f"an id of {ID_RULE}",
        }[self.kind]
        return text + (" or null" if self.nullable else "")

    def check(self, value: Any, job_kind: str = "") -> Any:
        """The value, normalized (floats as float, colours as a list), or BAD_PARAMS."""
        if value is None:
            if self.nullable:
                return None
            raise self._error(value, job_kind)
        checker = _CHECKS[self.kind]
        normalized = checker(self, value)
        if normalized is _INVALID:
            raise self._error(value, job_kind)
        return normalized

    def _error(self, value: Any, job_kind: str) -> VideoSceneError:
        where = f"{job_kind} param " if job_kind else ""
        return VideoSceneError(
            ErrorCode.BAD_PARAMS,
            f"{where}{self.name!r} must be {self.describe()}, got {_short_repr(value)}.",
            f"{self.name}: {self.doc}.",
        )


@dataclass(frozen=True)
class Constraint:
    """A rule between params, e.g. near < far."""

    names: tuple[str, ...]
    holds: Callable[[Mapping[str, Any]], bool]
    rule: str


@dataclass(frozen=True)
class JobSpec:
    kind: str
    doc: str
    params: tuple[Param, ...]
    constraints: tuple[Constraint, ...] = ()
    _by_name: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {param.name: param for param in self.params})

    def __getitem__(self, name: str) -> Param:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def defaults(self) -> dict[str, Any]:
        return {p.name: _copy(p.default) for p in self.params if not p.required}

    def validate(self, params: Any) -> dict[str, Any]:
        """All params of this job, checked and with defaults filled in; unknown names, missing
        required ones, wrong types, values out of range and broken constraints are BAD_PARAMS."""
        if not isinstance(params, dict):
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"{self.kind} params must be a JSON object, got {type(params).__name__}.",
                "Send params as an object of name -> value.",
            )
        unknown = sorted(str(name) for name in params if name not in self._by_name)
        if unknown:
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"Unknown {self.kind} params: {_short_repr(', '.join(unknown))}.",
                f"{self.kind} takes: {', '.join(self._by_name)} (docs/protocol.md).",
            )
        checked = self.pick(params, self._by_name)
        for constraint in self.constraints:
            if not constraint.holds(checked):
                values = ", ".join(f"{name} = {checked[name]!r}" for name in constraint.names)
                raise VideoSceneError(
                    ErrorCode.BAD_PARAMS,
                    f"{self.kind} params break the rule {constraint.rule} ({values}).",
                    f"Send params with {constraint.rule}.",
                )
        return checked

    def pick(self, params: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
        """The named params checked (defaults for absent ones); other keys are not looked at."""
        out = {}
        for name in names:
            param = self._by_name[name]
            if name in params:
                out[name] = param.check(params[name], self.kind)
            elif param.required:
                raise VideoSceneError(
                    ErrorCode.BAD_PARAMS,
                    f"{self.kind} needs the param {name!r} ({param.describe()}).",
                    f"{name}: {param.doc}.",
                )
            else:
                out[name] = _copy(param.default)
        return out


# ---- value checks ----------------------------------------------------------------------------
_INVALID = object()


def _in_range(param: Param, number: float) -> bool:
    low = -math.inf if param.minimum is None else param.minimum
    high = math.inf if param.maximum is None else param.maximum
    return low <= number <= high


def _check_bool(param: Param, value: Any) -> Any:
    return value if isinstance(value, bool) else _INVALID


def _check_int(param: Param, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not _in_range(param, value):
        return _INVALID
    return value


def _check_float(param: Param, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _INVALID
    number = float(value) if abs(value) < 1e308 else math.inf  # huge ints would overflow
    return number if math.isfinite(number) and _in_range(param, number) else _INVALID


def _check_choice(param: Param, value: Any) -> Any:
    return value if isinstance(value, str) and value in param.values else _INVALID


_COLOUR_CHANNEL = Param("channel", "float", 0.0, "a colour channel", minimum=0.0, maximum=1.0)


def _check_color(param: Param, value: Any) -> Any:
    if not isinstance(value, list | tuple) or len(value) != 3:
        return _INVALID
    channels = [_check_float(_COLOUR_CHANNEL, v) for v in value]
    return _INVALID if any(c is _INVALID for c in channels) else channels


def _check_id(param: Param, value: Any) -> Any:
    return value if isinstance(value, str) and ID_PATTERN.fullmatch(value) else _INVALID


_CHECKS: dict[str, Callable[[Param, Any], Any]] = {
    "bool": _check_bool,
    "int": _check_int,
    "float": _check_float,
    "choice": _check_choice,
    "color": _check_color,
    "id": _check_id,
}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def _short_repr(value: Any, limit: int = 60) -> str:
    """repr() cut short: hostile values can be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- the job kinds ---------------------------------------------------------------------------
BUILD_SCENE = JobSpec(
    "build_scene",
    "Two photos -> a Gaussian scene and its two reference cameras.",
    (
        Param(
            "prior",
            "choice",
            "auto",
            "Which prior builds the scene",
            choices=(
                Choice("auto", "Auto", "NoPoSplat when its checkpoint is installed, else stereo"),
                Choice("stereo", "Stereo", "The embedded two-view stereo prior: needs no weights"),
                Choice("noposplat", "NoPoSplat", "Pose-free feed-forward Gaussians (checkpoint)"),
            ),
        ),
        Param(
            "fov_deg",
            "float",
            None,
            "Horizontal field of view of both photos in degrees (wins over their EXIF)",
            label="Photo FOV",
            minimum=10.0,
            maximum=150.0,
            nullable=True,
            null_doc=(
                "each photo's own from its EXIF (35 mm equivalent focal length), else the stereo "
                "prior assumes 60 deg, NoPoSplat the seed's focal 0.8"
            ),
            manual_default=60.0,
        ),
        Param(
            "pose_refine_steps",
            "int",
            None,
            "NoPoSplat: photometric refinement steps of the second camera (0 skips it)",
            label="Pose Refine Steps",
            minimum=0,
            maximum=1000,
            nullable=True,
            null_doc="200 on CUDA, 5 elsewhere",
            manual_default=200,
        ),
    ),
)

LOAD_SCENE = JobSpec(
    "load_scene",
    "A scene PLY (the one build_scene returned) -> a scene the backend can render again.",
    (
        Param(
            "scene_id",
            "id",
            None,
            "The id to keep the scene under",
            nullable=True,
            null_doc="a new id",
            setting=False,
        ),
    ),
)

RENDER_VIDEO = JobSpec(
    "render_video",
    "A scene and a camera path -> one coarse and one refined frame per camera, streamed.",
    (
        Param(
            "scene_id",
            "id",
            None,
            "The scene to render (from build_scene or load_scene)",
            required=True,
            setting=False,
        ),
        Param(
            "width", "int", 720, "Frame width in pixels", minimum=16, maximum=4096, setting=False
        ),
        Param(
            "height", "int", 480, "Frame height in pixels", minimum=16, maximum=4096, setting=False
        ),
        Param("refine", "bool", True, "Run the video model (false: coarse frames only)"),
        Param("background", "color", (0.0, 0.0, 0.0), "Background colour of the coarse render"),
        Param(
            "near",
            "float",
            0.01,
            "Near clipping distance in splat units",
            minimum=1e-6,
            maximum=1e9,
        ),
        Param(
            "far",
            "float",
            1e6,
            "Far clipping distance in splat units",
            minimum=1e-6,
            maximum=1e10,
        ),
        Param(
            "leap_timestep",
            "int",
            None,
            "Noise level the one-step model starts from",
            minimum=0,
            maximum=999,
            nullable=True,
            null_doc="the seed's value for the condition source: 459 rendered, 549 photos",
            manual_default=459,
        ),
        Param(
            "seed",
            "int",
            111123,
            "Seed of the video model's noise (the seed system's fixed 111123)",
            minimum=0,
            maximum=2**31 - 1,  # Blender's IntProperty is 32-bit
        ),
        Param(
            "mode",
            "choice",
            "one_step",
            "How the video model runs",
            choices=(
                Choice("one_step", "One Step", "VideoScene's distilled single forward pass"),
                Choice("multi_step", "Multi Step", "The base model's sampler (comparison; slow)"),
            ),
        ),
        Param("steps", "int", 50, "multi_step: denoising steps", minimum=1, maximum=200),
        Param(
            "guidance_scale",
            "float",
            6.0,
            "multi_step: classifier-free guidance scale (1 turns guidance off)",
            label="Guidance",
            minimum=1.0,
            maximum=20.0,
        ),
        Param(
            "start_from_noise",
            "bool",
            False,
            "multi_step: start from pure noise instead of the leap timestep",
        ),
        Param(
            "memory_mode",
            "choice",
            "auto",
            "GPU memory plan of the video model (checkpoints/README.md)",
            label="Memory",
            choices=(
                Choice("auto", "Auto", "Pick from the free GPU memory (CPU: fp32)"),
                Choice("bf16", "bf16", "Everything on the GPU in bfloat16: fastest, ~80 GB"),
                Choice("fp16", "fp16", "As bf16 in float16, for GPUs without bfloat16"),
                Choice("balanced", "Balanced", "bf16 with VAE tiling and slicing: 40-48 GB"),
                Choice("low", "Low", "bf16, models offloaded between stages: 24 GB cards"),
                Choice("lowest", "Lowest", "bf16, transformer streamed block by block: 12-16 GB"),
                Choice("fp32", "fp32", "float32, nothing offloaded (CPU; reference numerics)"),
            ),
        ),
        Param(
            "condition_source",
            "choice",
            "rendered",
            "What the video model's first and last frames are conditioned on",
            label="Condition",
            choices=(
                Choice("rendered", "Rendered Frames", "The first and last coarse renders"),
                Choice("photos", "Photos", "The scene's two reference photos"),
            ),
        ),
    ),
    constraints=(Constraint(("near", "far"), lambda p: p["near"] < p["far"], "near < far"),),
)

FIT_SCENE = JobSpec(
    "fit_scene",
    "A scene and a video along known cameras -> a new scene fitted to the video (its own id).",
    (
        Param(
            "scene_id",
            "id",
            None,
            "The scene to start from (from build_scene, load_scene or an earlier fit)",
            nullable=True,
            null_doc="the scene the render job rendered (required when frames are sent)",
            setting=False,
        ),
        Param(
            "render_job",
            "id",
            None,
            "A finished or interrupted render_video job of that scene: its frames and cameras",
            nullable=True,
            null_doc="the frames and cameras are sent in the message (arrays frames, c2w, K)",
            setting=False,
        ),
        Param(
            "video_frames",
            "choice",
            "auto",
            "Which frames of the render job are the video",
            label="Fit To",
            choices=(
                Choice("auto", "Auto", "The refined frames when the job has them, else coarse"),
                Choice("refined", "Refined", "The video model's frames"),
                Choice("coarse", "Coarse", "The coarse render (control: adds nothing new)"),
            ),
        ),
        Param(
            "iterations",
            "int",
            None,
            "Optimisation steps (one view each)",
            label="Fit Iterations",
            minimum=1,
            maximum=30000,
            nullable=True,
            null_doc="3000 on CUDA, 150 elsewhere",
            manual_default=3000,
        ),
        Param(
            "downscale",
            "float",
            None,
            "The frames are fitted at their size divided by this",
            label="Fit Downscale",
            minimum=1.0,
            maximum=16.0,
            nullable=True,
            null_doc="1 on CUDA, 4 elsewhere",
            manual_default=1.0,
        ),
        Param(
            "max_views",
            "int",
            None,
            "Video frames the fit learns from at most (spread evenly, first and last included)",
            label="Fit Views",
            minimum=1,
            maximum=MAX_CAMERAS,
            nullable=True,
            null_doc="every frame on CUDA, 7 elsewhere",
            manual_default=49,
        ),
        Param(
            "refine_prior",
            "bool",
            None,
            "Optimise the scene's own Gaussians too (false: they stay, new ones fill the gaps)",
            nullable=True,
            null_doc="true on CUDA, false elsewhere",
            setting=False,
        ),
        Param(
            "use_photos",
            "bool",
            True,
            "The scene's two reference photos are extra views (when the scene still has them)",
        ),
        Param(
            "ssim_weight",
            "float",
            0.2,
            "Weight of D-SSIM in the loss (the rest is L1)",
            minimum=0.0,
            maximum=1.0,
        ),
    ),
)

JOB_SPECS: dict[str, JobSpec] = {
    spec.kind: spec for spec in (BUILD_SCENE, LOAD_SCENE, RENDER_VIDEO, FIT_SCENE)
}


def validate_params(kind: str, params: Any) -> dict[str, Any]:
    """The checked, complete params of a job of this kind (see JobSpec.validate)."""
    spec = JOB_SPECS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise VideoSceneError(
            ErrorCode.UNKNOWN_JOB_KIND,
            f"Unknown job kind {_short_repr(kind)}.",
            f"Use one of: {', '.join(JOB_SPECS)}.",
        )
    return spec.validate(params)


def markdown_table(spec: JobSpec) -> str:
    """The spec as the Markdown table docs/protocol.md shows for the job kind."""
    rows = ["| param | value | default | meaning |", "|---|---|---|---|"]
    for param in spec.params:
        default = "required" if param.required else _json_text(param.default)
        meaning = param.doc + (f"; null = {param.null_doc}" if param.nullable else "")
        if param.kind == "choice":
            meaning += "".join(f"; `{c.value}`: {c.doc}" for c in param.choices)
        rows.append(f"| `{param.name}` | {param.describe()} | {default} | {meaning} |")
    rows += [f"\nRule: {c.rule}." for c in spec.constraints]
    return "\n".join(rows)


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return _number(value)


def _markers(kind: str) -> tuple[str, str]:
    return f"<!-- params:{kind} -->", f"<!-- /params:{kind} -->"


def documented_table(document: str, kind: str) -> str | None:
    """The table a document holds between the job kind's param markers, or None."""
    begin, end = _markers(kind)
    if begin not in document or end not in document:
        return None
    return document.split(begin, 1)[1].split(end, 1)[0].strip()


def with_tables(document: str) -> str:
    """The document with every job kind's marked param table regenerated from the spec."""
    for spec in JOB_SPECS.values():
        begin, end = _markers(spec.kind)
        if begin in document and end in document:
            head, rest = document.split(begin, 1)
            tail = rest.split(end, 1)[1]
            document = f"{head}{begin}\n{markdown_table(spec)}\n{end}{tail}"
    return document


if __name__ == "__main__":  # python -m videoscene_protocol.params [--write docs/protocol.md]
    import sys
    from pathlib import Path

    if sys.argv[1:2] == ["--write"]:
        path = Path(sys.argv[2])
        path.write_text(with_tables(path.read_text()))
    else:
        for job_spec in JOB_SPECS.values():
            print(f"**{job_spec.kind}** params\n\n{markdown_table(job_spec)}\n")

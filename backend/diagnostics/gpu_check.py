"""`videoscene-backend check --gpu`: what the GPU path costs on this machine, before any
download. With random weights of the published shapes (realsize.py):

1. the video model, one real window (encode, one denoise step, decode) in each GPU memory
   mode, the smallest first: peak GPU memory, seconds per stage, whether it fit; a mode that
   runs out of memory is reported and the next one tried; then what `auto` would pick here,
   whether that fits, and the mode to use, in one sentence;
2. with the real weights installed, the recommended mode again on them, side by side;
3. the NoPoSplat forward at its input size; the sample scene rendered along the default
   49-frame path (gsplat against the compiled CPU renderer); fit_scene's steps on that path.

Without CUDA the video model is not run (it needs an NVIDIA GPU) and 3. is timed on the CPU.
Progress goes to stderr throughout; Ctrl-C ends the run with the report of what was measured.
Everything runs as a job runs it (VideoRefiner.refine, NoPoSplatNet, render, fit_scene); the
config only chooses the sizes, so the tests run this same code at a tiny size on the CPU.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from videoscene_protocol.errors import VideoSceneError
from videoscene_protocol.private_paths import make_private_dir, write_private_text

from ..priors.noposplat.network import REAL_CONFIG as REAL_PRIOR_CONFIG
from ..priors.noposplat.network import NoPoSplatConfig
from ..scene.gaussians import GaussianScene
from ..video.memory import (
    AUTO_THRESHOLDS_GIB,
    GPU_MODES_SMALLEST_FIRST,
    MemoryPlan,
    auto_mode_for_free_memory,
    mode_plan,
)
from .realsize import (
    REAL_VIDEO_MODEL,
    VideoModelConfigs,
    parameter_count,
    prior_on_meta,
    random_prior,
    random_refiner,
    resident_weight_bytes,
    video_models_on_meta,
)
from .report import (
    FAILED,
    FIT,
    GIB,
    INTERRUPTED,
    OUT_OF_MEMORY,
    RANDOM,
    REAL,
    SKIPPED,
    GpuCheckReport,
    ModeResult,
    gib,
)

ProgressLine = Callable[[str], None]
CPU = torch.device("cpu")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
SAMPLE_FOV_DEG = 2 * float(np.degrees(np.arctan(18 / 28)))  # samples' 28 mm lens, 36 mm sensor
NO_CUDA_NOTE = (
    "Not measured: no CUDA GPU here. The video model needs an NVIDIA GPU; on this machine "
    "render jobs return the coarse frames. The prior, renders and fit steps below are timed "
    "on the CPU."
)
EXIT_READY, EXIT_NO_VIDEO_MODEL, EXIT_INTERRUPTED = 0, 1, 130
RENDER_CHUNK = 7  # frames per render call (progress between them)


def sample_scene() -> GaussianScene:
    """The demo's scene: the stereo prior on samples/view_a.jpg and view_b.jpg."""
    import cv2

    from ..priors.stereo import StereoPrior

    photos = [
        cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)
        for name in ("view_a.jpg", "view_b.jpg")
    ]
    return StereoPrior().build(photos, SAMPLE_FOV_DEG, lambda *_: None, lambda: None)


@dataclass(frozen=True)
class GpuCheckConfig:
    """Sizes of the run. The defaults are the real ones; tests pass tiny ones."""

    video: VideoModelConfigs = REAL_VIDEO_MODEL
    modes: tuple[str, ...] = GPU_MODES_SMALLEST_FIRST
    prior: NoPoSplatConfig = REAL_PRIOR_CONFIG
    render_size: tuple[int, int] = (720, 480)  # (width, height)
    path_frames: int = 49
    cpu_render_frames: int = 8  # the compiled renderer's share where gsplat renders the path
    fit_steps: int = 100
    make_scene: Callable[[], GaussianScene] = field(default=sample_scene, compare=False)
    checkpoints: Path | None = None  # real weights, run side by side when installed

    @property
    def real_size(self) -> bool:
        return self.video == REAL_VIDEO_MODEL and self.prior == REAL_PRIOR_CONFIG


def printed_progress() -> ProgressLine:
    """Progress lines on stderr (the table and the JSON line own stdout), with the seconds
    since the start, flushed at once."""
    start = time.perf_counter()

    def line(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    return line


# ---- the run ---------------------------------------------------------------------------------
def run_gpu_check(
    config: GpuCheckConfig, video_device: torch.device | None, progress: ProgressLine
) -> GpuCheckReport:
    """The whole check. video_device: where the video model is measured (None: no CUDA, it is
    not run). The prior, renders and fit run on CUDA when the video model does, else the CPU.
    Ctrl-C (KeyboardInterrupt) ends it early: the report says so and holds what was measured."""
    started = time.perf_counter()
    cuda = video_device is not None and video_device.type == "cuda"
    compute = video_device if cuda else CPU
    frames, height, width = config.video.window
    report = GpuCheckReport(
        device=torch.cuda.get_device_name(video_device) if cuda else "cpu",
        cuda=cuda,
        window=f"{frames}x{height}x{width}",
        real_size=config.real_size,
        auto_thresholds_gib=dict(AUTO_THRESHOLDS_GIB),
    )
    free_bytes = None
    if cuda:
        free_bytes, total_bytes = torch.cuda.mem_get_info(video_device)
        report.total_gib, report.free_gib_at_start = gib(total_bytes), gib(free_bytes)
    try:
        report.parameter_counts = _parameter_counts(config)
        if video_device is None:
            report.video_note = NO_CUDA_NOTE
            progress("video model: skipped, no CUDA GPU (it needs an NVIDIA GPU)")
        else:
            _section(
                report,
                "video model",
                lambda: _video_model(config, video_device, free_bytes, report, progress),
            )
        _section(report, "prior", lambda: _prior(config, compute, report, progress))
        scene_and_path = _section(report, "scene", lambda: _scene_and_path(config, progress))
        if scene_and_path is not None:
            scene, c2w, K = scene_and_path
            frames_rendered = _section(
                report, "render", lambda: _render(config, scene, c2w, K, compute, report, progress)
            )
            if frames_rendered is not None:
                _section(
                    report,
                    "fit",
                    lambda: _fit(config, scene, frames_rendered, c2w, K, compute, report, progress),
                )
    except KeyboardInterrupt:
        report.interrupted = True
        progress("interrupted (Ctrl-C): stopping with what was measured so far")
    finally:
        _free_memory(compute)
        report.elapsed_s = round(time.perf_counter() - started, 1)
    return report


def _section(report: GpuCheckReport, name: str, work: Callable):
    """Run one part; a failure of it (out of memory included) is reported and the next part
    runs. KeyboardInterrupt goes through: it ends the whole check."""
    try:
        return work()
    except torch.cuda.OutOfMemoryError as error:
        report.errors.append(f"{name}: out of GPU memory ({_first_line(error)})")
    except (VideoSceneError, RuntimeError, ValueError, OSError, ImportError) as error:
        message = getattr(error, "message", None) or _first_line(error)
        report.errors.append(f"{name}: {type(error).__name__}: {message}")
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _parameter_counts(config: GpuCheckConfig) -> dict[str, int]:
    transformer, vae = video_models_on_meta(config.video)
    return {
        "transformer": parameter_count(transformer),
        "vae": parameter_count(vae),
        "noposplat": parameter_count(prior_on_meta(config.prior)),
    }


# ---- 1. the video model --------------------------------------------------------------------
def _video_model(
    config: GpuCheckConfig,
    device: torch.device,
    free_bytes: int | None,
    report: GpuCheckReport,
    progress: ProgressLine,
) -> None:
    frames, height, width = config.video.window
    coarse = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    for mode in config.modes:
        plan = mode_plan(mode, device)
        result = measure_window(
            plan, coarse, progress, lambda p: random_refiner(config.video, p), RANDOM, config.video
        )
        report.modes.append(result)
        if result.status == INTERRUPTED:
            raise KeyboardInterrupt
    recommend(report, free_bytes)
    _real_weights(config, device, coarse, report, progress)


def measure_window(
    plan: MemoryPlan,
    coarse: np.ndarray,
    progress: ProgressLine,
    load: Callable[[MemoryPlan], object],
    weights: str,
    configs: VideoModelConfigs | None = None,
) -> ModeResult:
    """Build (or load) the refiner in one mode and refine one window as a job does. Out of
    memory at any stage is a result, not an error; so is Ctrl-C (the caller stops then)."""
    from ..video.refiner import RefineOptions

    result = ModeResult(plan.mode, weights, FIT)
    cuda = plan.device.type == "cuda"
    if cuda and configs is not None:
        total = torch.cuda.get_device_properties(plan.device).total_memory
        needed = resident_weight_bytes(configs, plan)
        if needed > total:
            result.status = SKIPPED
            result.note = f"its weights alone need {needed / GIB:.1f} GiB"
            progress(f"{plan.mode}: skipped, {result.note} of {total / GIB:.1f}")
            return result
    build_stage = "build" if weights == RANDOM else "load"
    stage = build_stage
    refiner = None

    def on_stage(name: str, fraction: float, _detail: str) -> None:
        nonlocal stage
        if fraction == 0.0 and name != stage:
            stage = name
            progress(f"{plan.mode} ({weights} weights): {name}")

    try:
        _free_memory(plan.device)
        progress(
            f"{plan.mode} ({weights} weights): "
            + (
                "building on the meta device, filling on " + str(plan.device)
                if weights == RANDOM
                else "loading"
            )
        )
        start = time.perf_counter()
        refiner = load(plan)
        _synchronize(plan.device)
        result.stages_s[build_stage] = round(time.perf_counter() - start, 4)
        build_peak = _peak_bytes(plan.device)
        start = time.perf_counter()
        _, refined = refiner.refine(
            coarse, coarse[0], coarse[-1], RefineOptions(memory_mode=plan.mode), on_stage, _go_on
        )
        result.window_s = round(time.perf_counter() - start, 4)
        result.stages_s.update({k: round(v, 4) for k, v in refined.timings.items()})
        if cuda:
            result.peak_gib = gib(max(build_peak or 0, refined.peak_memory_bytes or 0))
    except torch.cuda.OutOfMemoryError:
        result.status, result.failed_stage = OUT_OF_MEMORY, stage
        if cuda:
            result.peak_gib = gib(_peak_bytes(plan.device))
    except KeyboardInterrupt:
        result.status, result.failed_stage = INTERRUPTED, stage
    except (RuntimeError, ValueError, VideoSceneError) as error:
        result.status, result.failed_stage = FAILED, stage
        result.note = getattr(error, "message", None) or _first_line(error)
    finally:
        del refiner
        _free_memory(plan.device)
    summary = f"{plan.mode} ({weights} weights): {result.status}"
    if result.failed_stage:
        summary += f" at {result.failed_stage}"
    if result.window_s is not None:
        summary += f", window {result.window_s:.1f} s"
    if result.peak_gib is not None:
        summary += f", peak {result.peak_gib:.2f} GiB"
    progress(summary)
    return result


def recommend(report: GpuCheckReport, free_bytes: int | None) -> None:
    """What auto would pick with this much free memory, whether that fit, and the mode to use:
    the fastest random-weight mode that fit. Sets the report's fields and sentence."""
    frames = int(report.window.split("x")[0])
    measured = {m.mode: m for m in report.modes if m.weights == RANDOM}
    fitted = [m for m in measured.values() if m.fits]
    best = min(fitted, key=lambda m: m.window_s or 0.0) if fitted else None
    report.recommended_mode = best.mode if best else None
    if free_bytes is not None:
        report.auto_mode = auto_mode_for_free_memory(free_bytes)
        picked = measured.get(report.auto_mode)
        report.auto_fits = None if picked is None else picked.fits
    free = "" if free_bytes is None else f" with {free_bytes / GIB:.1f} GiB free"
    if best is None:
        report.recommendation = (
            f"The video model does not fit this GPU{free}: every memory mode ran out of "
            "memory or was skipped, so render jobs will return the coarse frames. Free GPU "
            "memory (close other programs; Release GPU in Blender) and run the check again, "
            "or use a card with more memory."
        )
        return
    cost = _cost(best, frames)
    if report.auto_mode is None:
        report.recommendation = f"Use memory mode '{best.mode}': {cost}."
    elif report.auto_mode == best.mode:
        report.recommendation = (
            f"Keep memory mode 'auto': here it picks '{best.mode}', the fastest mode that "
            f"fits{free}: {cost}."
        )
    elif report.auto_fits:
        report.recommendation = (
            f"'auto' picks '{report.auto_mode}' here{free}, which fits ({_cost(measured[report.auto_mode], frames)}); "
            f"'{best.mode}' is faster on this card: {cost}. Choose it as the Memory Mode."
        )
    else:
        why = "was not measured" if report.auto_fits is None else "ran out of memory"
        report.recommendation = (
            f"'auto' would pick '{report.auto_mode}' here{free}, which {why}: choose "
            f"'{best.mode}' as the Memory Mode ({cost})."
        )


def _cost(result: ModeResult, frames: int) -> str:
    text = (
        f"one {frames}-frame window takes {result.window_s:.1f} s" if result.window_s else "it ran"
    )
    if result.peak_gib is not None:
        text += f" and peaks at {result.peak_gib:.1f} GiB"
    return text


def _real_weights(
    config: GpuCheckConfig,
    device: torch.device,
    coarse: np.ndarray,
    report: GpuCheckReport,
    progress: ProgressLine,
) -> None:
    """The recommended mode again on the installed weights, when there are any."""
    if config.checkpoints is None or report.recommended_mode is None:
        return
    from ..video.checkpoints import find_checkpoint
    from ..video.refiner import VideoRefiner

    try:
        checkpoint = find_checkpoint(Path(config.checkpoints))
    except VideoSceneError:
        report.video_note = (
            f"Real weights: not installed under {config.checkpoints}; the figures are for "
            "random weights of the same shapes."
        )
        return
    plan = mode_plan(report.recommended_mode, device)
    result = measure_window(
        plan, coarse, progress, lambda p: VideoRefiner.from_checkpoint(checkpoint, p), REAL
    )
    report.modes.append(result)
    if result.status == INTERRUPTED:
        raise KeyboardInterrupt


# ---- 3. the rest of the GPU path ------------------------------------------------------------
def _prior(
    config: GpuCheckConfig, device: torch.device, report: GpuCheckReport, progress: ProgressLine
) -> None:
    from ..priors.noposplat.prior import DEFAULT_FOCAL, normalized_intrinsics

    size = config.prior.image_size
    progress(f"NoPoSplat: building on the meta device, filling on {device}")
    network = random_prior(config.prior, device)
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(1, 2, 3, size, size, generator=generator) * 2 - 1).to(device)
    intrinsics = normalized_intrinsics(DEFAULT_FOCAL).expand(1, 2, 3, 3).to(device)
    report.prior = {"size": size, "weights": RANDOM, "status": "running"}
    forward_s, peak = _timed_forward(network, images, intrinsics, device, progress)
    report.prior.update(forward_s=forward_s, peak_gib=peak, status="measured")
    summary = f"forward at {size}x{size} (random weights) {forward_s:.2f} s"
    if peak is not None:
        summary += f", peak {peak:.2f} GiB"
    del network
    real = _real_prior(config, device)
    if real is not None:
        progress("NoPoSplat: the installed checkpoint")
        forward_real, _ = _timed_forward(real, images, intrinsics, device, progress)
        report.prior["forward_real_s"] = forward_real
        summary += f"; real weights {forward_real:.2f} s"
        del real
    report.prior["summary"] = summary
    progress(f"NoPoSplat: {summary}")


def _real_prior(config: GpuCheckConfig, device: torch.device):
    if config.checkpoints is None:
        return None
    from ..priors.noposplat.checkpoint import find_checkpoint, load_network

    path = find_checkpoint(Path(config.checkpoints))
    return None if path is None else load_network(path, config.prior, str(device))


def _timed_forward(network, images, intrinsics, device, progress) -> tuple[float, float | None]:
    with torch.no_grad():
        if device.type == "cuda":  # kernels chosen and loaded before the timed run
            network(images, intrinsics)
            _synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        progress("NoPoSplat: forward")
        start = time.perf_counter()
        network(images, intrinsics)
        _synchronize(device)
    return round(time.perf_counter() - start, 3), (
        gib(_peak_bytes(device)) if device.type == "cuda" else None
    )


def _scene_and_path(config: GpuCheckConfig, progress: ProgressLine):
    from ..headless import flythrough_cameras

    progress("scene: building the sample scene")
    scene = config.make_scene()
    width, height = config.render_size
    references = [
        {"K": c.K, "c2w": c.c2w, "width": c.width, "height": c.height}
        for c in scene.reference_cameras
    ]
    c2w, K = flythrough_cameras(references, config.path_frames, width, height)
    progress(f"scene: {scene.num_gaussians:,} Gaussians, {len(c2w)}-frame path at {width}x{height}")
    return scene, c2w, K


def _render_path(scene, c2w, K, size, backend, device, progress, label) -> torch.Tensor:
    from ..render import render

    width, height = size
    parts = []
    with torch.no_grad():
        for first in range(0, len(c2w), RENDER_CHUNK):
            chunk = slice(first, first + RENDER_CHUNK)
            out = render(
                scene,
                torch.from_numpy(c2w[chunk]),
                torch.from_numpy(K[chunk]),
                width,
                height,
                backend=backend,
            )
            parts.append(out.images)
            progress(f"render ({label}): {min(first + RENDER_CHUNK, len(c2w))}/{len(c2w)} frames")
    _synchronize(device)
    return torch.cat(parts)


def _render(config, scene, c2w, K, device, report, progress) -> np.ndarray:
    """Frames per second of the path: gsplat on CUDA against the compiled CPU renderer (on
    cpu_render_frames frames), or the compiled renderer alone. Returns the frames (uint8)."""
    from ..render import render, to_uint8

    size, count = config.render_size, len(c2w)
    cpu_scene = scene.to(CPU)
    with torch.no_grad():  # the compiled renderer's first call: compile, or load its cache
        start = time.perf_counter()
        render(
            cpu_scene, torch.from_numpy(c2w[:1]), torch.from_numpy(K[:1]), 64, 48, backend="numba"
        )
        first_call = round(time.perf_counter() - start, 2)
    report.render = {
        "gaussians": scene.num_gaussians,
        "frames": count,
        "size": f"{size[0]}x{size[1]}",
        "cpu_first_call_s": first_call,
    }
    picks = np.linspace(0, count - 1, min(count, config.cpu_render_frames)).round().astype(int)
    if device.type == "cuda":
        gpu_scene = scene.to(device)
        _render_path(gpu_scene, c2w[:1], K[:1], size, "gsplat", device, lambda _m: None, "warm-up")
        start = time.perf_counter()
        images = _render_path(gpu_scene, c2w, K, size, "gsplat", device, progress, "gsplat")
        report.render["gsplat_fps"] = round(count / (time.perf_counter() - start), 1)
        del gpu_scene
        start = time.perf_counter()
        _render_path(cpu_scene, c2w[picks], K[picks], size, "numba", CPU, progress, "compiled CPU")
    else:
        start = time.perf_counter()
        images = _render_path(cpu_scene, c2w, K, size, "numba", CPU, progress, "compiled CPU")
        picks = np.arange(count)
    report.render["cpu_fps"] = round(len(picks) / (time.perf_counter() - start), 2)
    summary = (
        f"{count} frames of the sample scene ({scene.num_gaussians:,} Gaussians) at "
        f"{size[0]}x{size[1]}: compiled CPU renderer {report.render['cpu_fps']:.2f} fps"
    )
    if "gsplat_fps" in report.render:
        ratio = report.render["gsplat_fps"] / max(report.render["cpu_fps"], 1e-9)
        report.render["gsplat_over_cpu"] = round(ratio, 1)
        summary = summary.replace(
            ": compiled", f": gsplat {report.render['gsplat_fps']:.1f} fps, compiled"
        )
        summary += f" (gsplat x{ratio:.0f})"
    report.render["summary"] = summary
    progress(f"render: {summary}")
    return to_uint8(images)


def _fit(config, scene, frames, c2w, K, device, report, progress) -> None:
    """fit_scene's steps on the path's frames with this device's job defaults. The frames are
    the coarse render: every pixel the scene leaves uncovered is seeded, as a refined video's
    would be (background None)."""
    from ..fit import FitSettings, fit_inputs, fit_scene
    from ..pipeline.fit_job import CPU_DEFAULTS, CUDA_DEFAULTS

    defaults = CUDA_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    settings = FitSettings(
        iterations=config.fit_steps,
        downscale=float(defaults["downscale"]),
        refine_prior=bool(defaults["refine_prior"]),
        device=str(device),
        background=None,
    )
    height, width = frames.shape[1:3]
    inputs = fit_inputs(
        lambda i: frames[i],
        c2w,
        K,
        len(frames),
        (width, height),
        scene,
        settings.downscale,
        defaults["max_views"],
    )
    shown = {"fraction": 0.0}

    def on_fit(_stage: str, fraction: float, detail: str) -> None:
        if fraction - shown["fraction"] >= 0.1 or fraction >= 1.0:
            shown["fraction"] = fraction
            progress(f"fit: {detail}")

    progress(f"fit: {config.fit_steps} steps on {len(inputs.views)} views ({device})")
    _, fitted = fit_scene(
        scene, inputs.views, settings, on_fit, _go_on, inputs.coverage, inputs.holes
    )
    optimise_s = fitted.timings.get("optimise", 0.0)
    steps_per_s = fitted.iterations / optimise_s if optimise_s > 0 and fitted.iterations else 0.0
    report.fit = {
        "steps": fitted.iterations,
        "views": len(inputs.views),
        "refine_prior": settings.refine_prior,
        "downscale": settings.downscale,
        "steps_per_s": round(steps_per_s, 2),
        "timings_s": {k: round(v, 2) for k, v in fitted.timings.items()},
        "seeded_gaussians": fitted.seeded,
    }
    if fitted.iterations:
        summary = (
            f"{fitted.iterations} steps on the {len(frames)}-frame path ({len(inputs.views)} "
            f"views at 1/{settings.downscale:g} size, prior {'refined' if settings.refine_prior else 'kept'}): "
            f"{steps_per_s:.2f} steps/s"
        )
    else:
        summary = "no steps: the scene already covers every view (nothing to learn)"
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in report.fit["timings_s"].items())
    report.fit["summary"] = f"{summary} ({timings})"
    progress(f"fit: {report.fit['summary']}")


# ---- memory and time helpers ---------------------------------------------------------------
def _go_on() -> None:
    """check_cancelled for the stages: nothing cancels a check but Ctrl-C."""


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_bytes(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def _free_memory(device: torch.device) -> None:
    """Whatever the last part left (an out-of-memory part most of all) is given back, and the
    peak counter restarts, so each part is measured on its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ---- the command -----------------------------------------------------------------------------
def save_report(report: GpuCheckReport, output_dir: Path) -> Path:
    folder = make_private_dir(Path(output_dir) / "checks", "checks folder")
    path = folder / f"gpu-check-{datetime.now():%Y%m%d-%H%M%S}.json"
    report.saved_to = str(path)
    write_private_text(path, report.json_line() + "\n")
    return path


def exit_code(report: GpuCheckReport) -> int:
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_READY if report.video_model_runs else EXIT_NO_VIDEO_MODEL


def main(
    checkpoints: Path | None,
    output_dir: Path,
    as_json: bool,
    config: GpuCheckConfig | None = None,
    video_device: torch.device | None = None,
    progress: ProgressLine | None = None,
) -> int:
    """`check --gpu`: run, save the JSON, print the table (and the JSON line). Exit 0 when the
    video model fits this GPU, 1 when it cannot run here, 130 after Ctrl-C."""
    if config is None:
        config = GpuCheckConfig(checkpoints=checkpoints)
    if video_device is None and torch.cuda.is_available():
        video_device = torch.device("cuda")
    progress = progress or printed_progress()
    report = run_gpu_check(config, video_device, progress)
    try:
        save_report(report, output_dir)
    except (OSError, VideoSceneError) as error:
        report.errors.append(f"saving the report: {getattr(error, 'message', error)}")
    print(report.format_table(), flush=True)
    if as_json:
        print(report.json_line(), flush=True)
    return exit_code(report)

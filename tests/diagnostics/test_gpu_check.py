"""`check --gpu`'s whole flow on the CPU with a scaled-down config (the same code: meta build,
to_empty, one window per memory mode, the prior, renders, fit steps, the table and the JSON
line), out of memory in one mode, Ctrl-C, and the CPU-only report of the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from videoscene_backend.cli import main as cli_main
from videoscene_backend.diagnostics import gpu_check
from videoscene_backend.diagnostics.gpu_check import (
    EXIT_INTERRUPTED,
    EXIT_NO_VIDEO_MODEL,
    NO_CUDA_NOTE,
    recommend,
    run_gpu_check,
)
from videoscene_backend.diagnostics.report import (
    FIT,
    INTERRUPTED,
    OUT_OF_MEMORY,
    RANDOM,
    GpuCheckReport,
    ModeResult,
)
from videoscene_backend.video.memory import AUTO_THRESHOLDS_GIB, GIB, GPU_MODES_SMALLEST_FIRST
from videoscene_backend.video.refiner import VideoRefiner

from .tiny import tiny_config

CPU = torch.device("cpu")


def _quiet(_message: str) -> None:
    return None


@pytest.fixture(scope="module")
def whole_run() -> tuple[GpuCheckReport, list[str]]:
    lines: list[str] = []
    report = run_gpu_check(tiny_config(), CPU, lines.append)
    return report, lines


def test_every_mode_runs_one_window_smallest_first(whole_run) -> None:
    report, lines = whole_run
    assert [m.mode for m in report.modes] == list(GPU_MODES_SMALLEST_FIRST)
    for mode in report.modes:
        assert mode.status == FIT and mode.weights == RANDOM, mode
        assert set(mode.stages_s) == {"build", "encode", "denoise", "decode"}
        assert mode.window_s >= mode.stages_s["denoise"] > 0
    assert report.recommended_mode in GPU_MODES_SMALLEST_FIRST
    assert report.recommendation.startswith(f"Use memory mode '{report.recommended_mode}'")
    assert not report.interrupted and not report.errors
    # progress throughout: each mode's stages, then the other parts
    assert any("lowest (random weights): building on the meta device" in line for line in lines)
    assert any(line.startswith("bf16 (random weights): fit") for line in lines)
    assert any(line.startswith("fit: ") and "steps/s" in line for line in lines)


def test_the_rest_of_the_path_is_timed(whole_run) -> None:
    report, _ = whole_run
    assert report.prior["forward_s"] > 0 and report.prior["weights"] == RANDOM
    assert report.render["frames"] == 5 and report.render["cpu_fps"] > 0
    assert "gsplat_fps" not in report.render  # no CUDA
    assert report.fit["steps"] == 3 and report.fit["steps_per_s"] > 0


def test_table_and_json_line(whole_run) -> None:
    report, _ = whole_run
    table = report.format_table()
    assert "SCALED-DOWN test config" in table and "5x32x48" in table
    for mode in GPU_MODES_SMALLEST_FIRST:
        assert f"  {mode:<9}random  fit" in table
    assert "Recommendation: " in table and "steps/s" in table
    line = report.json_line()
    assert "\n" not in line
    data = json.loads(line)
    assert data["check"] == "gpu" and data["real_size"] is False
    assert data["auto_thresholds_gib"] == AUTO_THRESHOLDS_GIB
    assert [m["mode"] for m in data["modes"]] == list(GPU_MODES_SMALLEST_FIRST)
    assert data["parameter_counts"]["transformer"] > 0


def test_out_of_memory_in_one_mode_is_reported_and_the_next_runs(monkeypatch) -> None:
    decode = VideoRefiner.decode

    def decode_out_of_memory(self, latents):
        if self.plan.mode == "lowest":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return decode(self, latents)

    monkeypatch.setattr(VideoRefiner, "decode", decode_out_of_memory)
    config = tiny_config(modes=("lowest", "low"))
    monkeypatch.setattr(gpu_check, "_prior", lambda *args: None)  # only the video model here
    monkeypatch.setattr(gpu_check, "_scene_and_path", lambda *args: None)
    report = run_gpu_check(config, CPU, _quiet)
    lowest, low = report.modes
    assert (lowest.status, lowest.failed_stage) == (OUT_OF_MEMORY, "decode")
    assert lowest.window_s is None and "decode" not in lowest.stages_s
    assert low.status == FIT and report.recommended_mode == "low"
    assert "(at decode)" in report.format_table()


def test_ctrl_c_stops_with_a_partial_report(monkeypatch, tmp_path: Path, capsys) -> None:
    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(VideoRefiner, "predict_x0", interrupted)
    monkeypatch.setattr(gpu_check, "_prior", lambda *args: pytest.fail("ran after Ctrl-C"))
    code = gpu_check.main(None, tmp_path, True, tiny_config(modes=("lowest", "low")), CPU, _quiet)
    assert code == EXIT_INTERRUPTED
    out = capsys.readouterr().out
    assert "INTERRUPTED (Ctrl-C)" in out
    data = json.loads(out.strip().splitlines()[-1])
    assert data["interrupted"] is True
    assert [(m["mode"], m["status"], m["failed_stage"]) for m in data["modes"]] == [
        ("lowest", INTERRUPTED, "denoise")
    ]
    saved = list((tmp_path / "checks").glob("gpu-check-*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["interrupted"] is True


def test_a_part_that_fails_is_named_and_the_rest_runs(monkeypatch) -> None:
    def broken(*_args):
        raise RuntimeError("numba is not installed")

    monkeypatch.setattr(gpu_check, "_render", broken)
    report = run_gpu_check(tiny_config(modes=()), None, _quiet)
    assert report.errors == ["render: RuntimeError: numba is not installed"]
    assert report.prior["forward_s"] > 0 and report.fit == {}  # the fit needs the frames


def test_the_cpu_only_command_says_the_video_model_needs_a_gpu(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    """`videoscene-backend check --gpu --json` on a machine without CUDA (this one, or one
    where torch sees none): no video model, the CPU parts timed, exit 1, the JSON saved."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check, "GpuCheckConfig", lambda checkpoints: tiny_config())
    code = cli_main(["check", "--gpu", "--json", "--output-dir", str(tmp_path)])
    assert code == EXIT_NO_VIDEO_MODEL
    captured = capsys.readouterr()
    table, json_line = captured.out.strip().rsplit("\n", 1)
    assert "no CUDA GPU" in table and NO_CUDA_NOTE.split(".")[0] in table
    assert "compiled CPU renderer" in table and "steps/s" in table
    data = json.loads(json_line)
    assert data["cuda"] is False and data["modes"] == [] and data["video_model_runs"] is False
    assert data["render"]["cpu_fps"] > 0 and data["fit"]["steps"] == 3
    assert data["saved_to"].startswith(str(tmp_path / "checks"))
    assert "video model: skipped, no CUDA GPU" in captured.err  # progress on stderr


@pytest.mark.parametrize(
    ("free_gib", "statuses", "auto", "fits", "expected"),
    [
        (
            79.0,
            {"lowest": 30.0, "low": 20.0, "balanced": 12.0, "bf16": 9.0},
            "bf16",
            True,
            "Keep memory mode 'auto'",
        ),
        (
            22.0,
            {"lowest": 30.0, "low": None, "balanced": None, "bf16": None},
            "low",
            False,
            "ran out of memory",
        ),
        (
            40.0,
            {"lowest": 30.0, "low": 20.0, "balanced": 25.0, "bf16": None},
            "balanced",
            True,
            "'low' is faster",
        ),
        (
            10.0,
            {"lowest": None, "low": None, "balanced": None, "bf16": None},
            "lowest",
            False,
            "does not fit",
        ),
    ],
)
def test_recommendation_sentences(free_gib, statuses, auto, fits, expected) -> None:
    """auto's pick comes from the declared thresholds; the recommendation is the fastest mode
    that fit (None: ran out of memory)."""
    report = GpuCheckReport("NVIDIA test", True, "49x480x720", True)
    report.modes = [
        ModeResult(mode, RANDOM, FIT if seconds else OUT_OF_MEMORY, window_s=seconds, peak_gib=9.5)
        for mode, seconds in statuses.items()
    ]
    recommend(report, int(free_gib * GIB))
    assert (report.auto_mode, report.auto_fits) == (auto, fits)
    assert expected in report.recommendation, report.recommendation

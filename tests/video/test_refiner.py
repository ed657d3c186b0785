"""The one-step refiner on tiny random models loaded through the real loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from videoscene_backend.video.checkpoints import find_checkpoint
from videoscene_backend.video.memory import plan_memory
from videoscene_backend.video.refiner import RefineOptions, VideoRefiner
from videoscene_backend.video.stage import refine_stage
from videoscene_protocol.errors import ErrorCode, VideoSceneError

from .conftest import TINY_FRAMES, TINY_SIZE


def _noop(*_args) -> None:
    return None


@pytest.fixture(scope="module")
def refiner(tiny_checkpoint: Path) -> VideoRefiner:
    return VideoRefiner.from_checkpoint(
        find_checkpoint(tiny_checkpoint), plan_memory("auto", torch.device("cpu"))
    )


@pytest.fixture(scope="module")
def coarse() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (TINY_FRAMES, *TINY_SIZE, 3), dtype=np.uint8)


def _refine(refiner: VideoRefiner, frames: np.ndarray, **options) -> np.ndarray:
    out, _ = refiner.refine(frames, frames[0], frames[-1], RefineOptions(**options), _noop, _noop)
    return out


def test_model_size_comes_from_the_loaded_config(refiner: VideoRefiner) -> None:
    assert (refiner.num_frames, refiner.height, refiner.width) == (TINY_FRAMES, *TINY_SIZE)


def test_one_step_gives_uint8_frames_of_the_model_shape(refiner, coarse) -> None:
    out = _refine(refiner, coarse)
    assert out.shape == coarse.shape and out.dtype == np.uint8
    assert out.std() > 0  # decoded, not a constant fill


def test_same_seed_is_identical_and_another_seed_differs(refiner, coarse) -> None:
    first = _refine(refiner, coarse, seed=7)
    again = _refine(refiner, coarse, seed=7)
    other = _refine(refiner, coarse, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_leap_timestep_changes_the_result(refiner, coarse) -> None:
    assert not np.array_equal(
        _refine(refiner, coarse, leap_timestep=100), _refine(refiner, coarse, leap_timestep=900)
    )


def test_multi_step_with_guidance_runs_every_step(refiner, coarse) -> None:
    stages = []
    options = RefineOptions(mode="multi_step", steps=4, guidance_scale=3.0, start_from_noise=True)
    out, report = refiner.refine(
        coarse, coarse[0], coarse[-1], options, lambda s, f, m: stages.append((s, m)), _noop
    )
    assert out.shape == coarse.shape
    assert [m for s, m in stages if s == "denoise" and m.startswith("step")] == [
        f"step {i}/4" for i in range(1, 5)
    ]
    assert set(report.timings) == {"encode", "denoise", "decode"}


def test_wrong_frame_shape_is_a_named_error(refiner, coarse) -> None:
    with pytest.raises(VideoSceneError) as info:
        _refine(refiner, coarse[:-1])
    assert info.value.code == ErrorCode.BAD_PARAMS


def test_cancel_between_stages(refiner, coarse) -> None:
    def cancel() -> None:
        raise VideoSceneError(ErrorCode.CANCELLED, "cancelled")

    with pytest.raises(VideoSceneError) as info:
        refiner.refine(coarse, coarse[0], coarse[-1], RefineOptions(), _noop, cancel)
    assert info.value.code == ErrorCode.CANCELLED


def test_refine_stage_resamples_any_path_length_and_size(
    job_context, tmp_path, tiny_checkpoint, coarse
) -> None:
    ctx = job_context(tmp_path, tiny_checkpoint)
    frames = np.random.default_rng(1).integers(0, 256, (20, 40, 50, 3), dtype=np.uint8)
    refined, meta = refine_stage(ctx, frames, [], RefineOptions(seed=3))
    assert refined.shape == frames.shape and refined.dtype == np.uint8
    assert meta["refined"] is True
    assert meta["video_model"]["leap_timestep"] == 459
    assert meta["video_model"]["memory"]["mode"] == "fp32"
    assert {stage for stage, *_ in ctx.events} == {"encode", "denoise", "decode"}
    assert len(ctx.models.loaded()) == 1  # stays warm


def test_refine_stage_photos_condition_defaults_to_the_posed_timestep(
    job_context, tmp_path, tiny_checkpoint, coarse
) -> None:
    photos = [coarse[0], coarse[-1]]
    _, meta = refine_stage(
        job_context(tmp_path, tiny_checkpoint),
        coarse,
        photos,
        RefineOptions(condition_source="photos"),
    )
    assert meta["video_model"]["leap_timestep"] == 549


def test_refine_stage_without_weights_returns_coarse_and_says_why(
    job_context, tmp_path, coarse
) -> None:
    refined, meta = refine_stage(job_context(tmp_path), coarse, [], RefineOptions())
    assert refined is None and meta["refined"] is False
    assert "model.safetensors" in meta["refine_message"]
    assert "videoscene-backend download" in meta["refine_message"]
    assert len(meta["weights_missing"]) == 5


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "three_step"},
        {"leap_timestep": 5000},
        {"seed": "x"},
        {"seed": 2.5},
        {"steps": True},
        {"guidance_scale": float("inf")},
        {"start_from_noise": "yes"},
    ],
)
def test_refine_options_refuse_what_the_spec_refuses(params) -> None:
    with pytest.raises(VideoSceneError) as info:
        RefineOptions.from_params(params)
    assert info.value.code == ErrorCode.BAD_PARAMS and next(iter(params)) in info.value.message


def test_refine_options_take_the_spec_defaults_and_ignore_other_render_params() -> None:
    options = RefineOptions.from_params({"scene_id": "abc", "width": 64, "seed": 5})
    assert options.seed == 5 and options.guidance_scale == 6.0 and options.mode == "one_step"

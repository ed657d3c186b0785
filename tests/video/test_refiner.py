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
    weights = meta["video_model"]["weights"]  # what was loaded, from where
    assert weights["distilled_weights"]["complete"] is True
    assert weights["distilled_weights"]["summary"] == "all 65 tensors of the model replaced"
    assert weights["prompt_embeds"].endswith("prompt_embeds.pt")
    assert weights["negative_prompt_embeds"] is None
    assert meta["video_model"]["sampler"] == {"condition_noise": "shared, exp(N(-3, 0.5))"}
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


# ---- the multi-step baseline: the base model's own sampler ----------------------------------


def test_multi_step_conditions_are_encoded_clean_one_step_conditions_noisy(refiner, coarse):
    first, last = coarse[0], coarse[-1]
    clean = refiner.encode_conditions(first, last, 3, torch.Generator().manual_seed(5), noisy=False)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        posterior = refiner.vae.encode(refiner._video_tensor(first[None])).latent_dist
        expected = posterior.sample(generator=generator) * refiner.scaling_factor
    torch.testing.assert_close(clean[:, :1], expected.permute(0, 2, 1, 3, 4))
    assert torch.count_nonzero(clean[:, 1]) == 0  # zeros between the end frames
    noisy = refiner.encode_conditions(first, last, 3, torch.Generator().manual_seed(5))
    assert not torch.allclose(noisy, clean)


def test_multi_step_without_negative_embeddings_runs_unguided_and_says_so(refiner, coarse):
    assert refiner.negative_prompt_embeds is None
    options = dict(mode="multi_step", steps=4, seed=2)
    guided, report = refiner.refine(
        coarse, coarse[0], coarse[-1], RefineOptions(**options, guidance_scale=6.0), _noop, _noop
    )
    unguided = _refine(refiner, coarse, **options, guidance_scale=1.0)
    np.testing.assert_array_equal(guided, unguided)
    assert report.sampler["guidance_scale_used"] == 1.0
    assert report.sampler["condition_noise"] == "none"
    message = report.sampler["negative_prompt_embeds"]
    assert message.startswith("missing (videoscene/negative_prompt_embeds.pt)")
    assert "guidance 6 was not applied" in message


def test_too_few_steps_for_the_leap_timestep_is_a_named_error(refiner, coarse):
    with pytest.raises(VideoSceneError) as info:
        _refine(refiner, coarse, mode="multi_step", steps=1)
    assert info.value.code == ErrorCode.BAD_PARAMS and "leap timestep 459" in info.value.message


def test_multi_step_guides_against_the_negative_file_in_float32(tiny_checkpoint, tmp_path, coarse):
    """CFG as the base pipeline: [negative, prompt] in one batch, the velocity cast to float32
    before guidance and the DDIM step, the latents back in the model's dtype."""
    import shutil

    from videoscene_backend.video.memory import MemoryPlan

    root = Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))
    negative = torch.randn(1, 16, 32)
    torch.save(negative, root / "videoscene" / "negative_prompt_embeds.pt")
    plan = MemoryPlan("bf16", torch.bfloat16, torch.device("cpu"))  # half precision, on the CPU
    model = VideoRefiner.from_checkpoint(find_checkpoint(root), plan)
    assert model.load_report["negative_prompt_embeds"].endswith("negative_prompt_embeds.pt")
    calls = {"prompts": [], "velocity": [], "step_input": [], "step_output": []}
    predict, step = model.predict_velocity, model.scheduler.step

    def spy_predict(x_t, conditions, timestep, prompts, rotary):
        calls["prompts"].append(prompts)
        calls["velocity"].append(predict(x_t, conditions, timestep, prompts, rotary))
        return calls["velocity"][-1]

    def spy_step(velocity, t, latents, **kwargs):
        calls["step_input"].append(velocity)
        calls["step_output"].append(step(velocity, t, latents, **kwargs)[0])
        return (calls["step_output"][-1],)

    model.predict_velocity, model.scheduler.step = spy_predict, spy_step
    options = RefineOptions(mode="multi_step", steps=4, guidance_scale=6.0, start_from_noise=True)
    frames, report = model.refine(coarse, coarse[0], coarse[-1], options, _noop, _noop)
    assert frames.shape == coarse.shape
    assert report.sampler["guidance_scale_used"] == 6.0
    assert report.sampler["negative_prompt_embeds"].endswith("negative_prompt_embeds.pt")
    assert len(calls["prompts"]) == 4
    prompts = calls["prompts"][0]
    assert prompts.shape[0] == 2 and prompts.dtype == torch.bfloat16
    torch.testing.assert_close(prompts[0], negative[0].to(torch.bfloat16))
    torch.testing.assert_close(prompts[1], model.prompt_embeds[0])
    for velocity, step_input in zip(calls["velocity"], calls["step_input"], strict=True):
        assert velocity.dtype == torch.bfloat16 and step_input.dtype == torch.float32
        uncond, cond = velocity.float().chunk(2)
        torch.testing.assert_close(step_input, uncond + 6.0 * (cond - uncond))

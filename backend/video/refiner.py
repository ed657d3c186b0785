"""VideoScene's one-step refinement on CogVideoX-Interpolation, one named method per step.

Tensor flow (see shared reference videoscene-inference.md), B = 1, F model frames:
    coarse uint8 [F, H, W, 3] --encode_video--> z0 [1, f, 16, h, w]      (f = (F - 1) / 4 + 1)
    first/last condition frames --encode_conditions--> [1, f, 16, h, w] (zeros between)
    z0 --add_leap_noise(t)--> x_t
    cat([x_t, conditions], channels) --predict_x0 (ONE transformer forward, v-prediction)--> x0
    x0 --decode--> uint8 [F, H, W, 3]
The multi-step mode runs the base model's own sampler for comparison (CogvideX-Interpolation's
pipeline): clean condition latents, classifier-free guidance against the T5 encoding of the
empty prompt (videoscene/negative_prompt_embeds.pt), velocity in float32 before guidance, DDIM
steps from the leap timestep or from pure noise. Without the negative embeddings it runs
unguided and the metadata says so: any other negative would be a different sampler.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.params import RENDER_VIDEO

from ..cancel import checked_blocks
from ..weights.sources import NEGATIVE_PROMPT_EMBEDS
from .checkpoints import VideoCheckpoint, load_distilled_weights, load_prompt_embeds
from .memory import MemoryPlan

ProgressFn = Callable[[str, float, str], None]

LEAP_TIMESTEP_RENDERED = 459  # pose-free demo: conditions are the rendered end frames
LEAP_TIMESTEP_PHOTOS = 549  # posed path: conditions are the original photos


def _default(name: str):
    return RENDER_VIDEO[name].default


@dataclass
class RefineOptions:
    """The video model's share of the render_video params; names, defaults and allowed values
    are declared once in videoscene_protocol.params.RENDER_VIDEO."""

    leap_timestep: int | None = _default("leap_timestep")
    seed: int = _default("seed")
    mode: str = _default("mode")
    steps: int = _default("steps")
    guidance_scale: float = _default("guidance_scale")
    start_from_noise: bool = _default("start_from_noise")
    memory_mode: str = _default("memory_mode")
    condition_source: str = _default("condition_source")

    @property
    def timestep(self) -> int:
        if self.leap_timestep is not None:
            return self.leap_timestep
        return LEAP_TIMESTEP_PHOTOS if self.condition_source == "photos" else LEAP_TIMESTEP_RENDERED

    @classmethod
    def from_params(cls, params: dict) -> RefineOptions:
        """Checked against the spec (BAD_PARAMS names the param); absent ones take defaults."""
        return cls(**RENDER_VIDEO.pick(params, [f.name for f in fields(cls)]))


@dataclass
class RefineReport:
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    sampler: dict = field(default_factory=dict)  # how the conditions and guidance were run


class VideoRefiner:
    """The loaded video model. Sizes come from the loaded configs (real: 49 x 480 x 720)."""

    def __init__(
        self,
        vae,
        transformer,
        scheduler,
        prompt_embeds: torch.Tensor,
        plan: MemoryPlan,
        negative_prompt_embeds: torch.Tensor | None = None,
        load_report: dict | None = None,
    ):
        self.vae = vae.eval().requires_grad_(False)
        self.transformer = transformer.eval().requires_grad_(False)
        self.scheduler = scheduler
        self.plan = plan
        self.prompt_embeds = prompt_embeds.to(plan.dtype)
        self.negative_prompt_embeds = (
            None if negative_prompt_embeds is None else negative_prompt_embeds.to(plan.dtype)
        )
        self.load_report = load_report or {}  # what was loaded from where (result metadata)
        self.spatial_scale = 2 ** (len(vae.config.block_out_channels) - 1)
        self.temporal_scale = int(vae.config.temporal_compression_ratio)
        config = transformer.config
        self.height = config.sample_height * self.spatial_scale
        self.width = config.sample_width * self.spatial_scale
        self.num_frames = config.sample_frames
        self.scaling_factor = float(vae.config.scaling_factor)
        self._place_models()

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, checkpoint: VideoCheckpoint, plan: MemoryPlan) -> VideoRefiner:
        from diffusers import (
            AutoencoderKLCogVideoX,
            CogVideoXDDIMScheduler,
            CogVideoXTransformer3DModel,
        )

        base = checkpoint.base_dir
        try:
            vae = AutoencoderKLCogVideoX.from_pretrained(base / "vae", torch_dtype=plan.dtype)
            transformer = CogVideoXTransformer3DModel.from_pretrained(
                base / "transformer", torch_dtype=plan.dtype
            )
            scheduler = CogVideoXDDIMScheduler.from_pretrained(base / "scheduler")
        except (OSError, ValueError, RuntimeError) as exc:
            raise VideoSceneError(
                ErrorCode.WEIGHTS_INVALID,
                f"Cannot load the base model from {base}: {exc}",
                "The folder must be CogvideoX-Interpolation in diffusers layout. "
                "Run `videoscene-backend download --what base`.",
            ) from exc
        match = load_distilled_weights(transformer, checkpoint.distilled_weights)
        config = transformer.config
        text_shape = (config.max_text_seq_length, config.text_embed_dim)
        prompt = load_prompt_embeds(checkpoint.prompt_embeds, *text_shape)
        negative = checkpoint.negative_prompt_embeds
        negative_embeds = None if negative is None else load_prompt_embeds(negative, *text_shape)
        report = {
            "base": str(base),
            "distilled_weights": {"file": str(checkpoint.distilled_weights), **match.to_meta()},
            "prompt_embeds": str(checkpoint.prompt_embeds),
            "negative_prompt_embeds": None if negative is None else str(negative),
        }
        return cls(vae, transformer, scheduler, prompt, plan, negative_embeds, report)

    def _place_models(self) -> None:
        plan = self.plan
        if plan.vae_tiling:
            self.vae.enable_tiling()
        if plan.vae_slicing:
            self.vae.enable_slicing()
        if plan.offload in ("none", "group"):
            self.vae.to(plan.device)  # the VAE is small next to the transformer
        if plan.offload == "none":
            self.transformer.to(plan.device)
        elif plan.offload == "group":
            # diffusers' block-level hooks stream transformer blocks to the GPU one at a time.
            self.transformer.enable_group_offload(
                onload_device=plan.device, offload_type="block_level", num_blocks_per_group=1
            )
        # "model": both stay on the CPU and visit the GPU for their stage (_resident).

    @contextlib.contextmanager
    def _resident(self, module: torch.nn.Module) -> Iterator[None]:
        """Whole-model offload: keep a module on the GPU only while its stage runs."""
        if self.plan.offload != "model":
            yield
            return
        module.to(self.plan.device)
        try:
            yield
        finally:
            module.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # ---- the steps -------------------------------------------------------------------------
    def _video_tensor(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [F, H, W, 3] -> [1, 3, F, H, W] in [-1, 1]."""
        video = torch.from_numpy(np.ascontiguousarray(frames)).to(self.plan.device)
        video = video.permute(3, 0, 1, 2).unsqueeze(0).to(self.plan.dtype)
        return video / 127.5 - 1.0

    def encode_video(self, frames: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        with self._resident(self.vae), torch.no_grad():
            posterior = self.vae.encode(self._video_tensor(frames)).latent_dist
            latents = posterior.sample(generator=generator) * self.scaling_factor
        return latents.permute(0, 2, 1, 3, 4)  # [1, f, C, h, w]

    def encode_conditions(
        self,
        first: np.ndarray,
        last: np.ndarray,
        latent_frames: int,
        generator: torch.Generator,
        noisy: bool = True,
    ) -> torch.Tensor:
        """First and last frames at latent frames 0 and -1, zeros between. noisy: with ONE
        shared small noise level, as the distilled model's one step (the seed's video_gen);
        clean for the base model's sampler, which encodes them as they are."""
        sigma = torch.exp(torch.randn((), generator=generator) * 0.5 - 3.0) if noisy else None
        encoded = []
        with self._resident(self.vae), torch.no_grad():
            for image in (first, last):
                pixels = self._video_tensor(image[None])  # [1, 3, 1, H, W]
                if sigma is not None:
                    noise = torch.randn(pixels.shape, generator=generator).to(pixels)
                    pixels = pixels + noise * sigma.to(pixels)
                latent = self.vae.encode(pixels).latent_dist.sample(generator=generator)
                encoded.append(latent.permute(0, 2, 1, 3, 4) * self.scaling_factor)
        first_latent, last_latent = encoded
        zeros = torch.zeros(
            (1, latent_frames - 2, *first_latent.shape[2:]),
            dtype=first_latent.dtype,
            device=first_latent.device,
        )
        return torch.cat([first_latent, zeros, last_latent], dim=1)

    def add_leap_noise(
        self, z0: torch.Tensor, timestep: int, generator: torch.Generator
    ) -> torch.Tensor:
        noise = torch.randn(z0.shape, generator=generator).to(z0)
        return self.scheduler.add_noise(z0, noise, torch.tensor([timestep], device=z0.device))

    def rotary_embeddings(self, latent_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        config = self.transformer.config
        grid_height = self.height // (self.spatial_scale * config.patch_size)
        grid_width = self.width // (self.spatial_scale * config.patch_size)
        # The model always runs at its native size (frames are resized in), so the crop region
        # the I2V pipeline computes for other sizes is the whole grid.
        crops = ((0, 0), (grid_height, grid_width))
        return get_3d_rotary_pos_embed(
            embed_dim=config.attention_head_dim,
            crops_coords=crops,
            grid_size=(grid_height, grid_width),
            temporal_size=latent_frames,
            device=self.plan.device,
        )

    def predict_velocity(
        self,
        x_t: torch.Tensor,
        conditions: torch.Tensor,
        timestep: torch.Tensor,
        prompt_embeds: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        batch = prompt_embeds.shape[0]
        hidden = torch.cat([x_t, conditions], dim=2).expand(batch, -1, -1, -1, -1)
        with self._resident(self.transformer), torch.no_grad():
            return self.transformer(
                hidden_states=hidden.to(self.plan.dtype),
                encoder_hidden_states=prompt_embeds.to(self.plan.device),
                timestep=timestep.expand(batch).to(self.plan.device),
                image_rotary_emb=rotary,
                return_dict=False,
            )[0]

    def predict_x0(self, x_t, conditions, timestep: int, rotary) -> torch.Tensor:
        """ONE transformer forward; x0 = sqrt(abar) x_t - sqrt(1 - abar) v (v-prediction)."""
        t = torch.tensor([timestep], device=x_t.device)
        velocity = self.predict_velocity(x_t, conditions, t, self.prompt_embeds, rotary)
        return self.scheduler.get_velocity(velocity, x_t, t)

    def guidance_plan(self, options: RefineOptions) -> tuple[torch.Tensor | None, dict]:
        """(negative embeddings or None, what the metadata says about guidance). Guidance
        needs the T5 encoding of ""; without it the sampler runs unguided, said plainly."""
        requested = float(options.guidance_scale)
        if requested <= 1.0:
            return None, {"guidance_scale_used": 1.0, "negative_prompt_embeds": "not used"}
        source = self.load_report.get("negative_prompt_embeds")
        if self.negative_prompt_embeds is None:
            return None, {
                "guidance_scale_used": 1.0,
                "negative_prompt_embeds": (
                    f"missing ({NEGATIVE_PROMPT_EMBEDS[0]}): guidance {requested:g} was not "
                    "applied, the sampler ran unguided; see checkpoints/README.md to make the "
                    "file"
                ),
            }
        return self.negative_prompt_embeds, {
            "guidance_scale_used": requested,
            "negative_prompt_embeds": source or "loaded",
        }

    def sample_multi_step(
        self,
        z0: torch.Tensor,
        conditions: torch.Tensor,
        options: RefineOptions,
        rotary,
        generator: torch.Generator,
        progress: ProgressFn,
        check_cancelled: Callable[[], None],
        negative: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The base model's sampler (DDIM, v-prediction), as CogvideX-Interpolation runs it:
        classifier-free guidance with `negative` (None: unguided), the velocity in float32
        before guidance and the step, the latents back in the model's dtype after each step."""
        scheduler = self.scheduler
        scheduler.set_timesteps(options.steps, device=z0.device)
        timesteps = scheduler.timesteps
        if options.start_from_noise:
            noise = torch.randn(z0.shape, generator=generator).to(z0)
            latents = noise * scheduler.init_noise_sigma
        else:
            timesteps = timesteps[timesteps <= options.timestep]
            if len(timesteps) == 0:
                raise VideoSceneError(
                    ErrorCode.BAD_PARAMS,
                    f"{options.steps} steps leave no timestep at or below the leap timestep "
                    f"{options.timestep}.",
                    "Use more steps, a higher leap_timestep, or start_from_noise.",
                )
            latents = self.add_leap_noise(z0, int(timesteps[0]), generator)
        prompts = self.prompt_embeds
        if negative is not None:
            prompts = torch.cat([negative, prompts])
        for index, t in enumerate(timesteps):
            check_cancelled()
            model_input = scheduler.scale_model_input(latents, t)
            velocity = self.predict_velocity(model_input, conditions, t.reshape(1), prompts, rotary)
            velocity = velocity.float()
            if negative is not None:
                uncond, cond = velocity.chunk(2)
                velocity = uncond + options.guidance_scale * (cond - uncond)
            latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
            latents = latents.to(self.plan.dtype)
            progress("denoise", (index + 1) / len(timesteps), f"step {index + 1}/{len(timesteps)}")
        # DDIM's last step returns the model's x0 estimate at t -> 0.
        return latents

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        with self._resident(self.vae), torch.no_grad():
            video = self.vae.decode(latents.permute(0, 2, 1, 3, 4) / self.scaling_factor).sample
        video = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return video.permute(1, 2, 3, 0).cpu().numpy()  # [F, H, W, 3]

    # ---- the whole refinement --------------------------------------------------------------
    def refine(
        self,
        coarse: np.ndarray,
        first_condition: np.ndarray,
        last_condition: np.ndarray,
        options: RefineOptions,
        progress: ProgressFn,
        check_cancelled: Callable[[], None],
    ) -> tuple[np.ndarray, RefineReport]:
        """coarse uint8 [F, H, W, 3] at the model's size -> refined uint8 frames, same shape."""
        expected = (self.num_frames, self.height, self.width, 3)
        if coarse.shape != expected or coarse.dtype != np.uint8:
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"The video model takes uint8 frames of shape {expected}, got {coarse.shape} {coarse.dtype}.",
                "Render the window on the model canvas (videoscene_backend.video.canvas) first.",
            )
        check_cancelled()
        report = RefineReport()
        if self.plan.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.plan.device)
        generator = torch.Generator("cpu").manual_seed(options.seed)  # device-independent noise

        def timed(stage: str, fn, *args):
            start = time.perf_counter()
            progress(stage, 0.0, "")
            value = fn(*args)
            if self.plan.device.type == "cuda":
                torch.cuda.synchronize(self.plan.device)
            report.timings[stage] = time.perf_counter() - start
            progress(stage, 1.0, "")
            check_cancelled()
            return value

        # A cancel waits for one transformer or VAE block at most, not a whole stage.
        with checked_blocks(check_cancelled, self.vae, self.transformer):
            one_step = options.mode == "one_step"
            z0 = timed("encode", self.encode_video, coarse, generator)
            conditions = self.encode_conditions(
                first_condition, last_condition, z0.shape[1], generator, noisy=one_step
            )
            report.sampler["condition_noise"] = "shared, exp(N(-3, 0.5))" if one_step else "none"
            rotary = self.rotary_embeddings(z0.shape[1])
            if one_step:
                x_t = self.add_leap_noise(z0, options.timestep, generator)
                x0 = timed("denoise", self.predict_x0, x_t, conditions, options.timestep, rotary)
            else:
                negative, guidance = self.guidance_plan(options)
                report.sampler.update(guidance)
                x0 = timed(
                    "denoise",
                    self.sample_multi_step,
                    z0,
                    conditions,
                    options,
                    rotary,
                    generator,
                    progress,
                    check_cancelled,
                    negative,
                )
            frames = timed("decode", self.decode, x0)
        if self.plan.device.type == "cuda":
            report.peak_memory_bytes = int(torch.cuda.max_memory_allocated(self.plan.device))
        return frames, report

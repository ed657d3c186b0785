"""The video model and the NoPoSplat network at their real size with random weights, built
without initialising billions of values on the CPU: each model is built on torch's meta device
(no memory), given real memory with `to_empty`, and filled in place on the measuring device.

Memory and time do not depend on the values, only on the shapes and dtypes, so these models cost
what the published weights cost. The values only need to stay finite: each matrix is drawn with
the standard deviation 1/sqrt(fan-in), vectors (biases, norms) with 0.02.

Parameter counts of the real size (tests/diagnostics/test_realsize.py holds them; sources in
docs/gpu-check.md): transformer 5,570,479,680 (+ 54,607,872 in its learned positional
embedding, a buffer the checkpoint also holds), VAE 215,583,907, NoPoSplat 611,996,332.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain

import torch
from torch import nn

from ..priors.noposplat.network import REAL_CONFIG as REAL_PRIOR_CONFIG
from ..priors.noposplat.network import NoPoSplatConfig, NoPoSplatNet
from ..video.checkpoints import REAL_TRANSFORMER_CONFIG, REAL_VAE_CONFIG
from ..video.memory import MemoryPlan
from ..video.refiner import VideoRefiner

VECTOR_STD = 0.02  # biases and norm weights
CPU = torch.device("cpu")

# CogVideoX-5B's DDIM scheduler as CogvideX-Interpolation ships it (scheduler/scheduler_config
# .json; the shared reference's schedule). Its values cost nothing: only the real-weights run
# reads the downloaded file instead.
REAL_SCHEDULER_CONFIG: dict = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "set_alpha_to_one": True,
    "clip_sample": False,
    "snr_shift_scale": 1.0,
}


@dataclass(frozen=True)
class VideoModelConfigs:
    """The configs a video model is built from; the window size follows from them."""

    transformer: Mapping = field(default_factory=lambda: dict(REAL_TRANSFORMER_CONFIG))
    vae: Mapping = field(default_factory=lambda: dict(REAL_VAE_CONFIG))
    scheduler: Mapping = field(default_factory=lambda: dict(REAL_SCHEDULER_CONFIG))

    @property
    def window(self) -> tuple[int, int, int]:
        """(frames, height, width) of one window, as VideoRefiner derives them."""
        spatial = 2 ** (len(self.vae["block_out_channels"]) - 1)
        config = self.transformer
        return (
            config["sample_frames"],
            config["sample_height"] * spatial,
            config["sample_width"] * spatial,
        )

    @property
    def prompt_shape(self) -> tuple[int, int, int]:
        return (1, self.transformer["max_text_seq_length"], self.transformer["text_embed_dim"])


REAL_VIDEO_MODEL = VideoModelConfigs()


def video_models_on_meta(configs: VideoModelConfigs) -> tuple[nn.Module, nn.Module]:
    """(transformer, VAE) on the meta device: shapes and dtypes, no memory."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    with torch.device("meta"):
        return (
            CogVideoXTransformer3DModel(**configs.transformer),
            AutoencoderKLCogVideoX(**configs.vae),
        )


def prior_on_meta(config: NoPoSplatConfig = REAL_PRIOR_CONFIG) -> nn.Module:
    with torch.device("meta"):
        return NoPoSplatNet(config)


def parameter_count(module: nn.Module) -> int:
    """Distinct parameters (a tensor two modules share counts once: what memory holds)."""
    return sum(p.numel() for p in module.parameters())


def checkpoint_numel(module: nn.Module) -> int:
    """Values a checkpoint of the module holds: its state dict, persistent buffers and every
    name of a shared tensor included."""
    return sum(t.numel() for t in module.state_dict().values())


def _tensors(module: nn.Module) -> Iterator[torch.Tensor]:
    return chain(module.parameters(), module.buffers())


def tensor_bytes(module: nn.Module, dtype: torch.dtype) -> int:
    """Bytes of the module's parameters and buffers once its float tensors are in dtype."""
    size = torch.empty((), dtype=dtype, device="meta").element_size()
    return sum(
        t.numel() * (size if t.is_floating_point() else t.element_size()) for t in _tensors(module)
    )


def _fill_random_(tensor: torch.Tensor, generator: torch.Generator) -> None:
    if not tensor.is_floating_point():
        tensor.zero_()
        return
    std = (tensor[0].numel() ** -0.5) if tensor.ndim >= 2 else VECTOR_STD
    tensor.normal_(0.0, std, generator=generator)


def materialize_random(
    module: nn.Module,
    home: torch.device,
    dtype: torch.dtype,
    fill_device: torch.device,
    seed: int = 0,
) -> nn.Module:
    """A meta-device module given real memory on `home` in `dtype` (float tensors; what
    from_pretrained(torch_dtype=...) gives) and filled in place with random values drawn on
    fill_device: on the GPU, where drawing is fast, and copied tensor by tensor where the
    module lives on the CPU (offload modes), so no second copy of the model is ever held."""
    # On meta only the recorded dtype changes. nn.Module's own `to`: diffusers' override warns
    # about float32 modules these models do not have.
    nn.Module.to(module, dtype)
    module.to_empty(device=home)
    generator = torch.Generator(fill_device).manual_seed(seed)
    with torch.no_grad():
        for tensor in _tensors(module):
            if tensor.device.type == fill_device.type:
                _fill_random_(tensor, generator)
            else:
                drawn = torch.empty(tensor.shape, dtype=tensor.dtype, device=fill_device)
                _fill_random_(drawn, generator)
                tensor.copy_(drawn)
    return module.eval().requires_grad_(False)


def module_home(plan: MemoryPlan) -> torch.device:
    """Where the refiner expects the models before it places them: the CPU when it offloads."""
    return plan.device if plan.offload == "none" else CPU


def random_refiner(configs: VideoModelConfigs, plan: MemoryPlan, seed: int = 0) -> VideoRefiner:
    """The VideoRefiner a job would load, with random weights of the configs' size."""
    from diffusers import CogVideoXDDIMScheduler

    transformer, vae = video_models_on_meta(configs)
    home = module_home(plan)
    materialize_random(transformer, home, plan.dtype, plan.device, seed)
    materialize_random(vae, home, plan.dtype, plan.device, seed + 1)
    scheduler = CogVideoXDDIMScheduler(**configs.scheduler)
    generator = torch.Generator().manual_seed(seed)
    prompt = torch.randn(configs.prompt_shape, generator=generator)
    return VideoRefiner(vae, transformer, scheduler, prompt, plan)


def resident_weight_bytes(configs: VideoModelConfigs, plan: MemoryPlan) -> int:
    """The least the plan keeps on the GPU at once (weights only, no activations): a mode whose
    weights alone exceed the card cannot fit and is not tried."""
    transformer, vae = video_models_on_meta(configs)
    transformer_bytes = tensor_bytes(transformer, plan.dtype)
    vae_bytes = tensor_bytes(vae, plan.dtype)
    if plan.offload == "model":  # one model at a time visits the GPU
        return max(transformer_bytes, vae_bytes)
    if plan.offload == "group":  # the VAE stays, the transformer streams block by block
        blocks = getattr(transformer, "transformer_blocks", [])
        return vae_bytes + max((tensor_bytes(b, plan.dtype) for b in blocks), default=0)
    return transformer_bytes + vae_bytes


def random_prior(config: NoPoSplatConfig, device: torch.device, seed: int = 0) -> nn.Module:
    """The NoPoSplat network in float32 (as the prior loads it) with random weights."""
    return materialize_random(prior_on_meta(config), device, torch.float32, device, seed)

"""Splat rendering: gsplat on CUDA; on the CPU a compiled (numba) renderer where no gradient is
needed and the pure-torch renderer where one is; all three follow gsplat's rules.

out = render(scene, c2w, K, width, height)       # images (N, H, W, 3) float in [0, 1]
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..scene.gaussians import GaussianScene

log = logging.getLogger("videoscene.backend")
BACKENDS = ("auto", "gsplat", "numba", "torch")


@dataclass
class RenderOutput:
    images: torch.Tensor  # (N, H, W, 3) float32 in [0, 1]
    depth: torch.Tensor | None = None  # (N, H, W) expected depth (0 where empty)
    alpha: torch.Tensor | None = None  # (N, H, W)
    # With return_info: what gsplat's densification strategies read (gsplat.strategy):
    # "means2d" (N, G, 2) projected centres in the autograd graph, "radii" (N, G, 2) pixel
    # radii (0 where culled), "gaussian_ids" (None: not packed),
    # "width", "height", "n_cameras".
    info: dict | None = None


def render(
    scene: GaussianScene,
    c2w: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    *,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    near: float = 0.01,
    far: float = 1e10,
    backend: str = "auto",
    return_depth: bool = False,
    return_alpha: bool = False,
    return_info: bool = False,
    sh_degree: int | None = None,
    check_cancelled: Callable[[], None] | None = None,
) -> RenderOutput:
    """Render N cameras (OpenCV c2w in the splat frame, pixel K at width x height).

    check_cancelled (raises to stop) is called between frames, and by the torch renderer also
    between tile batches and in the backward pass, so a job stops within one batch's time."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r} (use {', '.join(BACKENDS)})")
    if return_info and backend == "numba":
        raise ValueError("return_info needs a differentiable renderer (gsplat or torch)")
    device, dtype = scene.means.device, scene.means.dtype
    c2w = torch.as_tensor(c2w, device=device).to(dtype)
    K = torch.as_tensor(K, device=device).to(dtype)
    if c2w.ndim == 2:
        c2w, K = c2w[None], K[None]
    degree = scene.sh_degree if sh_degree is None else min(sh_degree, scene.sh_degree)
    bg = torch.tensor(background, device=device, dtype=dtype)
    if backend == "auto":
        backend = _auto_backend(scene, c2w, K, return_info)
    if backend == "gsplat":
        from .gsplat_backend import render_gsplat as renderer
    elif backend == "numba":
        renderer = _compiled_renderer()
        if renderer is None:
            raise RuntimeError("the numba renderer is unavailable: pip install numba")
    else:
        from .torch_backend import render_torch as renderer
    # The compiled renderer has no autograd graph, so no strategy info (auto never picks it then).
    info_arg = {} if backend == "numba" else {"want_info": return_info}
    out = renderer(
        scene,
        c2w,
        K,
        width,
        height,
        bg,
        near,
        far,
        degree,
        return_depth,
        return_alpha,
        **info_arg,
        check_cancelled=check_cancelled,
    )
    if out.info is not None:
        out.info.update(width=width, height=height, n_cameras=len(c2w))
    return out


def needs_gradients(scene: GaussianScene, *tensors: torch.Tensor) -> bool:
    """Whether autograd would record this render: grad mode on and any input requiring grad."""
    inputs = (scene.means, scene.quats, scene.scales, scene.opacities, scene.sh, *tensors)
    return torch.is_grad_enabled() and any(t.requires_grad for t in inputs)


def _auto_backend(
    scene: GaussianScene, c2w: torch.Tensor, K: torch.Tensor, return_info: bool = False
) -> str:
    """gsplat on CUDA; on the CPU the compiled renderer unless a gradient or the strategies'
    info is needed (it has no backward) or numba is missing; the torch renderer otherwise."""
    if scene.means.is_cuda:
        return "gsplat"
    on_cpu = scene.means.device.type == "cpu"
    wants_graph = return_info or needs_gradients(scene, c2w, K)
    if on_cpu and not wants_graph and _compiled_renderer() is not None:
        return "numba"
    return "torch"


@functools.cache
def _compiled_renderer() -> Callable[..., RenderOutput] | None:
    """The numba renderer, or None (said once in the log) where numba cannot be imported."""
    try:
        from .numba_backend import render_numba
    except ImportError as exc:
        log.warning(
            "the compiled CPU renderer is unavailable (%s); CPU renders use the torch renderer, "
            "several times slower (pip install numba)",
            exc,
        )
        return None
    return render_numba


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

"""The optimisation: the scene's Gaussians plus seeds, fitted to the views.

Parameters follow gsplat's conventions (log scales, opacity logits, sh0 / shN apart, one Adam
per parameter) so gsplat's DefaultStrategy can densify and prune them. Each step renders one
view: through gsplat on CUDA, through the project's differentiable torch renderer elsewhere,
which returns the same `info` (means2d with its gradient, radii) the strategy reads.

Two modes (FitSettings.refine_prior):
- the prior's Gaussians are optimised with the seeds (the CUDA default);
- the prior is kept as it is and rendered once per view as a layer the seeds composite behind
  (`prior + (1 - prior alpha) * seeds`): the CPU default. On the CPU one render of a
  few-hundred-thousand-Gaussian prior takes seconds, so re-rendering it every step would take
  hours; the seeds fill what the prior leaves uncovered, which is where they sit.
Robustness to a video that is not exactly 3D-consistent: each video frame's loss is weighted
by median(frame errors) / its own running error (clamped to MIN_FRAME_WEIGHT..1), so frames
that disagree with the rest pull less; the photos keep weight 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from gsplat.strategy import DefaultStrategy

from ..render import render
from ..scene.gaussians import PLACEHOLDERS_META, GaussianScene
from .loss import photometric_loss, psnr
from .seed import Seeds, seeds_for_view
from .views import Chained, FitView

ProgressFn = Callable[[str, float, str], None]

MAX_SEEDS = 300_000  # new Gaussians at most (memory and step time)
MIN_FRAME_WEIGHT = 0.3
ERROR_SMOOTHING = 0.7  # running per-frame error: new = s * old + (1 - s) * this step's
LEARNING_RATES = {  # per unit of scene scale for means; the rest as gsplat's trainer, sh0 x4
    "means": 1.6e-4,
    "scales": 5e-3,
    "quats": 1e-3,
    "opacities": 5e-2,
    "sh0": 1e-2,
    "shN": 1e-2 / 20,
}
PROGRESS_STEPS = 200  # progress events per fit at most


@dataclass(frozen=True)
class FitSettings:
    iterations: int
    downscale: float
    refine_prior: bool
    ssim_weight: float = 0.2
    seed: int = 0
    device: str = "cpu"
    # What the frames show where there is nothing (a coarse render's background): pixels of
    # this colour are not seeded, so a fit to coarse frames adds no Gaussians of empty space.
    background: tuple[float, float, float] | None = (0.0, 0.0, 0.0)

    @property
    def backend(self) -> str:
        return "gsplat" if self.device.startswith("cuda") else "torch"


@dataclass
class FitReport:
    iterations: int = 0
    views: int = 0
    photos: int = 0
    seeded: int = 0
    hole_seeded: int = 0  # seeds added after the optimisation where views were still uncovered
    gaussians_before: int = 0
    gaussians_after: int = 0
    psnr_start: float = 0.0
    psnr_end: float = 0.0
    min_frame_weight: float = 1.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "iterations": self.iterations,
            "views": self.views,
            "photos": self.photos,
            "seeded_gaussians": self.seeded,
            "hole_seeded_gaussians": self.hole_seeded,
            "gaussians_before": self.gaussians_before,
            "gaussians_after": self.gaussians_after,
            "psnr_start_db": round(self.psnr_start, 2),
            "psnr_end_db": round(self.psnr_end, 2),
            "min_frame_weight": round(self.min_frame_weight, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass
class _Layer:
    """The kept prior at one view: premultiplied colour and alpha (no gradients)."""

    colour: torch.Tensor  # (H, W, 3)
    alpha: torch.Tensor  # (H, W)


def _render(
    scene: GaussianScene, view: FitView, settings: FitSettings, backend: str | None = None, **flags
):
    return render(
        scene,
        view.c2w.to(settings.device)[None],
        view.K.to(settings.device)[None],
        view.width,
        view.height,
        backend=backend or settings.backend,
        **flags,
    )


def _scene_scale(scene: GaussianScene, views: list[FitView]) -> float:
    """The median distance from the views' cameras to the scene's Gaussians: the unit the
    strategy's 3D scale thresholds and the means' learning rate are relative to."""
    centres = torch.stack([v.c2w[:3, 3] for v in views]).to(scene.means.device)
    sample = scene.means[:: max(1, scene.num_gaussians // 20_000)].detach()
    if len(sample) == 0:
        return 1.0
    distance = torch.cdist(sample.float(), centres.float()).min(dim=1).values
    return max(float(distance.median()), 1e-6)


@torch.no_grad()
def prior_layers_and_seeds(
    scene: GaussianScene,
    views: list[FitView],
    settings: FitSettings,
    progress: ProgressFn,
    check_cancelled: Callable[[], None],
    coverage: Sequence[FitView] = (),
) -> tuple[list[_Layer], Seeds]:
    """The prior rendered once per view, and seeds for what it leaves uncovered, view by view
    (a view's coverage counts the seeds the views before it added). The coverage views (the
    path frames the fit does not learn from) only seed: without them a pixel that only those
    frames see would stay black along the path. No gradients here, so these renders go
    through the fastest renderer there is ('auto': the compiled one on the CPU)."""
    layers, seeds = [], Seeds.empty()
    fallback = _scene_scale(scene, views)
    every = Chained(views, coverage)  # coverage may be lazy: read one at a time
    for index, view in enumerate(every):
        check_cancelled()
        progress("render", index / len(every), f"prior at {view.name} ({index + 1}/{len(every)})")
        out = _render(scene, view, settings, "auto", return_alpha=True, return_depth=True)
        colour, alpha, depth = out.images[0], out.alpha[0], out.depth[0]
        if index < len(views):
            layers.append(_Layer(colour.cpu(), alpha.cpu()))
        if len(seeds) < MAX_SEEDS:
            seeds = seeds.extend(
                _seeds_behind(colour, alpha, depth, seeds, scene, view, settings, fallback)
            )
    progress("render", 1.0, f"{len(seeds)} Gaussians seeded")
    return layers, seeds.limited(MAX_SEEDS, np.random.default_rng(settings.seed))


def _seeds_behind(
    colour: torch.Tensor,
    alpha: torch.Tensor,
    depth: torch.Tensor,
    seeds: Seeds,
    scene: GaussianScene,
    view: FitView,
    settings: FitSettings,
    fallback: float,
) -> Seeds:
    """Seeds for what `view` shows that the scene's render there (colour premultiplied, alpha,
    depth) and the seeds made so far, composited behind it, leave uncovered."""
    if len(seeds):
        seeded = _render(
            seeds.as_scene(scene.sh_degree).to(settings.device),
            view,
            settings,
            "auto",
            return_alpha=True,
        )
        colour = colour + (1 - alpha)[..., None] * seeded.images[0]
        alpha = alpha + (1 - alpha) * seeded.alpha[0]
    return seeds_for_view(
        view,
        alpha.cpu().numpy(),
        depth.cpu().numpy(),
        fallback,
        settings.background,
        colour.cpu().numpy(),
    )


@torch.no_grad()
def hole_seeds(
    scene: GaussianScene,
    views: Iterable[FitView],
    settings: FitSettings,
    check_cancelled: Callable[[], None],
    fallback: float | None = None,
) -> Seeds:
    """Seeds, after the optimisation, where the fitted scene still leaves a view uncovered
    (the strategy pruned or shrank seeds there, or the views' seeds left gaps between them):
    coloured by the view, so a path frame shows what it saw, not black. `fallback` is the
    depth of a view that sees no surface at all (the scene's scale by default)."""
    if fallback is None:  # reads the views twice: pass it for views read lazily
        views = list(views)
        fallback = _scene_scale(scene, views)
    seeds = Seeds.empty()
    for view in views:
        check_cancelled()
        out = _render(scene, view, settings, "auto", return_alpha=True, return_depth=True)
        colour, alpha, depth = out.images[0], out.alpha[0], out.depth[0]
        seeds = seeds.extend(
            _seeds_behind(colour, alpha, depth, seeds, scene, view, settings, fallback)
        )
    return seeds.limited(MAX_SEEDS, np.random.default_rng(settings.seed))


def _parameters(scene: GaussianScene, device: str) -> dict[str, torch.nn.Parameter]:
    """gsplat's parameter layout, copied (the scene itself is never changed)."""
    eps = 1e-6
    opacities = scene.opacities.detach().float().clamp(eps, 1 - eps)
    tensors = {
        "means": scene.means.detach().float(),
        "scales": scene.scales.detach().float().clamp_min(1e-10).log(),
        "quats": scene.quats.detach().float(),
        "opacities": torch.log(opacities / (1 - opacities)),
        "sh0": scene.sh.detach().float()[:, :1],
        "shN": scene.sh.detach().float()[:, 1:],
    }
    return {k: torch.nn.Parameter(v.to(device).clone()) for k, v in tensors.items()}


def _as_scene(params: dict[str, torch.Tensor]) -> GaussianScene:
    return GaussianScene(
        params["means"],
        torch.nn.functional.normalize(params["quats"], dim=-1),
        params["scales"].exp(),
        torch.sigmoid(params["opacities"]),
        torch.cat([params["sh0"], params["shN"]], dim=1),
    )


def _optimizers(params, scene_scale: float) -> dict[str, torch.optim.Adam]:
    return {
        name: torch.optim.Adam(
            [
                {
                    "params": [param],
                    "lr": LEARNING_RATES[name] * (scene_scale if name == "means" else 1.0),
                    "name": name,
                }
            ],
            eps=1e-15,
        )
        for name, param in params.items()
    }


def _strategy(iterations: int) -> DefaultStrategy:
    """gsplat's densification and pruning, its schedule scaled to the fit's length (its
    defaults assume 30,000 steps; a CPU fit runs a few hundred). No opacity reset: a short fit
    would not recover from one."""
    return DefaultStrategy(
        refine_start_iter=max(1, iterations // 6),
        refine_stop_iter=max(2, iterations * 3 // 4),
        refine_every=max(10, iterations // 10),
        reset_every=10 * iterations + 1,
        verbose=False,
    )


def fit_scene(
    scene: GaussianScene,
    views: list[FitView],
    settings: FitSettings,
    progress: ProgressFn,
    check_cancelled: Callable[[], None],
    coverage: Sequence[FitView] = (),
    holes: Sequence[FitView] | None = None,
) -> tuple[GaussianScene, FitReport]:
    """A new scene fitted to the views; `scene` is left as it was. The coverage views only add
    seeds where they see what neither the scene nor the views' seeds cover. The hole pass
    after the optimisation looks at `holes` (views and coverage by default; views.fit_inputs
    gives every frame at its own size)."""
    if not views:
        raise ValueError("a fit needs at least one view")
    # The prior's stand-ins for what no photo saw would cover exactly what the frames show
    # beyond the photos, and on the CPU (the prior kept as a layer) no seed would land there:
    # set aside for the fit, put back afterwards for what no frame showed either.
    scene, placeholders = scene.split_placeholders()
    report = FitReport(
        iterations=settings.iterations,
        views=sum(not v.is_photo for v in views),
        photos=sum(v.is_photo for v in views),
        gaussians_before=scene.num_gaussians,
    )
    device = settings.device
    prior = scene.to(device)
    start = time.perf_counter()
    layers, seeds = prior_layers_and_seeds(
        prior, views, settings, progress, check_cancelled, coverage
    )
    report.seeded = len(seeds)
    report.timings["seed"] = time.perf_counter() - start

    start = time.perf_counter()
    learned = seeds.as_scene(scene.sh_degree).to(device)
    if settings.refine_prior:
        learned = _concatenated(prior, learned)
    params = _parameters(learned, device)
    scale = _scene_scale(prior, views)
    optimizers = _optimizers(params, scale)
    strategy = _strategy(settings.iterations)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=scale)
    targets = [v.image.to(device) for v in views]
    errors = torch.full((len(views),), float("nan"))
    order = torch.Generator().manual_seed(settings.seed)
    schedule = torch.empty(0, dtype=torch.long)
    recent: list[float] = []
    every = max(1, settings.iterations // PROGRESS_STEPS)
    # Nothing to learn when the prior is kept and covers every view: no steps to take.
    steps = settings.iterations if len(params["means"]) else 0
    report.iterations = steps
    for step in range(steps):
        check_cancelled()
        if len(params["means"]) == 0:  # the strategy pruned every Gaussian there was to learn
            report.iterations = step
            break
        if len(schedule) == 0:  # every view once per round, in a fresh random order
            schedule = torch.randperm(len(views), generator=order)
        index, schedule = int(schedule[0]), schedule[1:]
        view = views[index]
        image, info = _step_render(params, view, layers[index], settings)
        loss, l1 = photometric_loss(image, targets[index], settings.ssim_weight)
        errors[index] = _smoothed(errors[index], float(l1.detach()))
        weight = 1.0 if view.is_photo else _frame_weight(errors, views, index)
        report.min_frame_weight = min(report.min_frame_weight, weight)
        if info is not None:
            strategy.step_pre_backward(params, optimizers, state, step, info)
        (loss * weight).backward()
        if info is not None:
            strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        for optimizer in optimizers.values():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        recent = (recent + [psnr(image, targets[index])])[-len(views) :]
        if step == len(views) - 1 or (step == settings.iterations - 1 and not report.psnr_start):
            report.psnr_start = sum(recent) / len(recent)
        if step % every == 0 or step == settings.iterations - 1:
            progress(
                "fit",
                (step + 1) / settings.iterations,
                f"iteration {step + 1}/{settings.iterations}, PSNR {sum(recent) / len(recent):.1f} dB",
            )
    report.psnr_end = sum(recent) / len(recent) if recent else 0.0
    report.timings["optimise"] = time.perf_counter() - start

    with torch.no_grad():
        fitted = _as_scene(params)
        fitted = fitted if settings.refine_prior else _concatenated(prior, fitted)
        start = time.perf_counter()
        holes = Chained(views, coverage) if holes is None else holes
        filled = hole_seeds(fitted, holes, settings, check_cancelled, scale)
        report.hole_seeded = len(filled)
        if len(filled):
            fitted = _concatenated(fitted, filled.as_scene(scene.sh_degree).to(device))
        report.timings["holes"] = time.perf_counter() - start
        meta = dict(scene.meta)
        if placeholders is not None:  # last, and marked again for the next fit
            span = (fitted.num_gaussians, fitted.num_gaussians + placeholders.num_gaussians)
            meta.update(zip(PLACEHOLDERS_META, span, strict=True))
            fitted = _concatenated(fitted, placeholders.to(device))
        result = GaussianScene(
            *(
                t.detach().cpu().float().contiguous()
                for t in (fitted.means, fitted.quats, fitted.scales, fitted.opacities, fitted.sh)
            ),
            reference_cameras=list(scene.reference_cameras),
            reference_images=list(scene.reference_images),
            meta=meta,
        )
    del params, optimizers, state, layers, targets, prior, learned
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    result.validate()
    report.gaussians_after = result.num_gaussians
    return result, report


def _step_render(params, view: FitView, layer: _Layer, settings: FitSettings):
    out = _render(_as_scene(params), view, settings, return_info=True)
    info = out.info if len(params["means"]) else None
    if settings.refine_prior:
        return out.images[0], info
    device = out.images.device
    colour, alpha = layer.colour.to(device), layer.alpha.to(device)[..., None]
    return colour + (1 - alpha) * out.images[0], info


def _concatenated(first: GaussianScene, second: GaussianScene) -> GaussianScene:
    return GaussianScene(
        *(
            torch.cat([getattr(first, n), getattr(second, n)])
            for n in ("means", "quats", "scales", "opacities", "sh")
        )
    )


def _smoothed(old: torch.Tensor, new: float) -> float:
    return (
        new
        if math.isnan(float(old))
        else ERROR_SMOOTHING * float(old) + (1 - ERROR_SMOOTHING) * new
    )


def _frame_weight(errors: torch.Tensor, views: list[FitView], index: int) -> float:
    video = torch.tensor([not v.is_photo for v in views]) & ~torch.isnan(errors)
    if int(video.sum()) < 3:
        return 1.0
    typical = float(errors[video].median())
    return float(min(1.0, max(MIN_FRAME_WEIGHT, typical / max(float(errors[index]), 1e-8))))

"""The colour fit at the reference camera (backend/priors/stereo/colours.py) against the real
renderer: its local compositing model must be what the renderer does, and its colours must
re-render the photo more faithfully than the photo's own colours."""

from __future__ import annotations

import numpy as np
import torch
from videoscene_backend.priors.stereo.colours import (
    COLOUR_RANGE,
    composite,
    fit_colours,
    reference_weights,
)
from videoscene_backend.priors.stereo.splats import SIGMA_PX
from videoscene_backend.render import render
from videoscene_backend.scene.gaussians import SH_C0, GaussianScene

WIDTH, HEIGHT, FOCAL = 48, 40, 200.0
K = np.array([[FOCAL, 0, WIDTH / 2], [0, FOCAL, HEIGHT / 2], [0, 0, 1.0]])


def pixel_gaussians(seed: int = 0):
    """One Gaussian per pixel centre at a noisy depth (so that neighbours cover each other in a
    random order), sized as the stereo prior sizes them, and a photo of thin bright lines."""
    rng = np.random.default_rng(seed)
    depth = 2.0 + 0.05 * rng.standard_normal((HEIGHT, WIDTH))
    opacity = rng.uniform(0.9, 0.999, (HEIGHT, WIDTH))
    photo = np.full((HEIGHT, WIDTH, 3), 0.4) + 0.1 * rng.random((HEIGHT, WIDTH, 3))
    photo[:, ::5] = 0.75  # one-pixel lines, the hardest case for overlapping splats
    photo[::7, :, 0] = 0.15
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5  # the renderers' pixel centres
    rays = np.stack([(xs - K[0, 2]) / FOCAL, (ys - K[1, 2]) / FOCAL, np.ones_like(xs)], -1)
    means = (rays * depth[..., None]).reshape(-1, 3)
    return means, depth, opacity, photo


def rendered(means, depth, opacity, colours) -> np.ndarray:
    n = len(means)
    scene = GaussianScene(
        means=torch.from_numpy(means).float(),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.from_numpy(SIGMA_PX * depth.reshape(-1, 1) / FOCAL).float().repeat(1, 3),
        opacities=torch.from_numpy(opacity.ravel()).float(),
        sh=torch.from_numpy((colours.reshape(-1, 1, 3) - 0.5) / SH_C0).float(),
    )
    with torch.no_grad():
        out = render(scene, torch.eye(4), torch.from_numpy(K).float(), WIDTH, HEIGHT)
    return out.images[0].numpy()


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((np.clip(image, 0, 1) - reference) ** 2)))


def test_the_local_compositing_model_is_what_the_renderer_does() -> None:
    means, depth, opacity, photo = pixel_gaussians()
    offsets, weights = reference_weights(depth, opacity, SIGMA_PX)
    modelled = composite(photo, offsets, weights)
    actual = rendered(means, depth, opacity, photo)
    error = np.abs(modelled - actual)
    # A pixel here and there may differ where two neighbours' depths tie within float error.
    assert np.percentile(error, 99.5) < 0.002 and error.max() < 0.05
    # The model is not the identity: the photo's own colours come back blurred.
    assert np.abs(actual - photo).max() > 0.1


def test_fitted_colours_re_render_the_photo_sharper() -> None:
    means, depth, opacity, photo = pixel_gaussians(seed=1)
    fitted = fit_colours(photo, depth, opacity, SIGMA_PX)
    assert fitted.min() >= COLOUR_RANGE[0] and fitted.max() <= COLOUR_RANGE[1]
    before = psnr(rendered(means, depth, opacity, photo), photo)
    after = psnr(rendered(means, depth, opacity, fitted), photo)
    assert after > before + 3.0, (before, after)

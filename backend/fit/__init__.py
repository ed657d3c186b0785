"""Fitting a scene to a video along known cameras (the fit_scene job, docs/protocol.md).

    inputs = fit_inputs(
        read_frame, c2w, K, count, (width, height), scene, settings.downscale, max_views
    )
    result = fit_scene(
        scene, inputs.views, settings, progress, check_cancelled, inputs.coverage, inputs.holes
    )

Starts from the scene's Gaussians, adds Gaussians where the frames show what the scene does not
cover (seed.py), and optimises them with an L1 + D-SSIM loss against the frames and the two
reference photos (loss.py), densifying and pruning with gsplat's DefaultStrategy
(optimise.py). Layers: pipeline -> fit -> render -> scene.
"""

from .optimise import FitReport, FitSettings, fit_scene
from .views import FitInputs, FitView, fit_inputs, photo_views, video_views

__all__ = [
    "FitInputs",
    "FitReport",
    "FitSettings",
    "FitView",
    "fit_inputs",
    "fit_scene",
    "photo_views",
    "video_views",
]

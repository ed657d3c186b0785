"""Fitting a scene to a video along known cameras (the fit_scene job, docs/protocol.md).

    result = fit_scene(scene, views, settings, progress, check_cancelled)

Starts from the scene's Gaussians, adds Gaussians where the frames show what the scene does not
cover (seed.py), and optimises them with an L1 + D-SSIM loss against the frames and the two
reference photos (loss.py), densifying and pruning with gsplat's DefaultStrategy
(optimise.py). Layers: pipeline -> fit -> render -> scene.
"""

from .optimise import FitReport, FitSettings, fit_scene
from .views import FitView, photo_views, video_views

__all__ = ["FitReport", "FitSettings", "FitView", "fit_scene", "photo_views", "video_views"]

"""Operators: the panel's buttons (jobs, splat display), the Gaussian-splat PLY import and
export, and the preferences' Check Weights, Test Backend and Check GPU."""

from .backend_test import classes as backend_test_classes
from .display import classes as display_classes
from .gpu_check import classes as gpu_check_classes
from .jobs import classes as job_classes
from .splat_files import classes as splat_file_classes
from .splat_files import menu_export, menu_import
from .weights import classes as weights_classes

classes = (
    *job_classes,
    *splat_file_classes,
    *weights_classes,
    *backend_test_classes,
    *gpu_check_classes,
    *display_classes,
)
__all__ = ["classes", "menu_export", "menu_import"]

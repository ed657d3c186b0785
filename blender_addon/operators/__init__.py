"""Operators: the panel's buttons and the Gaussian-splat PLY import and export."""

from .jobs import classes as job_classes
from .splat_files import classes as splat_file_classes
from .splat_files import menu_export, menu_import

classes = (*job_classes, *splat_file_classes)
__all__ = ["classes", "menu_export", "menu_import"]

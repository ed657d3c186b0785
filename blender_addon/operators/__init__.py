"""Operators: the panel's buttons and the PLY importer."""

from .jobs import classes as job_classes
from .jobs import menu_import

classes = job_classes
__all__ = ["classes", "menu_import"]

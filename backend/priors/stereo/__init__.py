"""The embedded two-view stereo prior (see prior.py for the steps and the limits)."""

from .prior import StereoPrior

__all__ = ["StereoPrior"]

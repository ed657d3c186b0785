# Copied from videoscene_backend.priors.stereo.__init__ at 4c100db (issue #35's in-run baseline for
# bench/real_photos.py; imports made absolute). Not used by the backend.
"""The embedded two-view stereo prior (see prior.py for the steps and the limits)."""

from .prior import StereoPrior

__all__ = ["StereoPrior"]

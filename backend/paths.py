"""Where the backend looks for weights and writes results."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def checkpoints_dir() -> Path:
    """VIDEOSCENE_CHECKPOINTS if set, else the repository's checkpoints/ folder."""
    return Path(os.environ.get("VIDEOSCENE_CHECKPOINTS", REPO_ROOT / "checkpoints"))


def default_output_dir() -> Path:
    """VIDEOSCENE_OUTPUT if set, else ./videoscene-output (jobs/<id>/ are written below it)."""
    return Path(os.environ.get("VIDEOSCENE_OUTPUT", Path.cwd() / "videoscene-output"))

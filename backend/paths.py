"""Where the backend looks for weights and writes results."""

from __future__ import annotations

import os
from pathlib import Path

from videoscene_protocol import private_paths

REPO_ROOT = Path(__file__).resolve().parent.parent


def checkpoints_dir() -> Path:
    """VIDEOSCENE_CHECKPOINTS if set, else the repository's checkpoints/ folder."""
    return Path(os.environ.get("VIDEOSCENE_CHECKPOINTS", REPO_ROOT / "checkpoints"))


def default_output_dir() -> Path:
    """VIDEOSCENE_OUTPUT if set, else the user's own cache folder (~/.cache/videoscene/output on
    Linux; protocol/private_paths.py has the rule, shared with the add-on); jobs/<id>/ below it.
    The service creates it 0700 and refuses one another user owns or can enter."""
    return private_paths.default_output_dir()

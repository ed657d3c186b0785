"""Cancellation inside a network's forward pass.

A job stops by a check (a callable that raises VideoSceneError(CANCELLED)) at points where its
work can be dropped. Between a model's stages is too coarse on a CPU, where one transformer
forward takes minutes: `checked_blocks` runs the check before every block of the model's
ModuleLists (transformer layers, VAE down/up blocks, DPT stages), so the wait is one block.
Forward pre-hooks rather than a check argument threaded through diffusers' modules, which we
do not own; the hooks are removed on exit, so a cached model is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

CancelCheck = Callable[[], None]  # raises when the job was cancelled


@contextmanager
def checked_blocks(check: CancelCheck, *models: torch.nn.Module | None) -> Iterator[None]:
    """Within the block, `check()` runs before each forward of every ModuleList member of the
    models (None entries are skipped: an optional model that is not loaded)."""
    handles = []

    def before_block(_module: torch.nn.Module, _args: tuple) -> None:
        check()

    try:
        for model in models:
            if model is None:
                continue
            for container in model.modules():
                if isinstance(container, torch.nn.ModuleList):
                    handles.extend(m.register_forward_pre_hook(before_block) for m in container)
        yield
    finally:
        for handle in handles:
            handle.remove()

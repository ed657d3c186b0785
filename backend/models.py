"""Lazily loaded models that stay warm between jobs and are released on request."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ModelCache:
    """Keyed cache of loaded models. Keys are namespaced, e.g. "prior:noposplat", "video:refiner"."""

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str, loader: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._models:
                self._models[key] = loader()
            return self._models[key]

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def release(self, prefix: str = "") -> list[str]:
        """Drop every model whose key starts with prefix ("" = all) and free GPU memory."""
        with self._lock:
            dropped = [key for key in self._models if key.startswith(prefix)]
            for key in dropped:
                del self._models[key]
        if dropped:
            gc.collect()
            _empty_accelerator_cache()
        return dropped


def _empty_accelerator_cache() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

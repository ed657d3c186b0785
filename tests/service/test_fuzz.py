"""The fuzzer of bench/fuzz.py, bounded: a few thousand hostile messages in every category at a
live service (in this process), with real handlers. bench/fuzz.py runs 10,000+ against a
`serve` process."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import json
import sys
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"


def load_fuzzer():
    spec = importlib.util.spec_from_file_location("videoscene_bench_fuzz", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def live_rss_mb(process: psutil.Process) -> float:
    """The process's RSS after glibc hands its freed pages back: the fuzzer runs in this process
    too, and the bombs it builds leave freed memory that malloc may keep, which is not growth
    of the service."""
    libc = ctypes.util.find_library("c")
    if libc and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)
    return process.memory_info().rss / 2**20


def test_thousands_of_hostile_messages_harm_nothing(tmp_path) -> None:
    from videoscene_backend.service import start_in_thread

    fuzz = load_fuzzer()
    handle = start_in_thread(tmp_path / "out", tmp_path / "no-checkpoints")
    me = psutil.Process()
    try:
        figures = fuzz.fuzz(
            handle.address,
            messages=3000,
            seed=7,
            rss=lambda: live_rss_mb(me),
            alive=handle.thread.is_alive,
        )
    finally:
        handle.stop()
    print(json.dumps(figures))
    assert figures["messages"] == 3000 and len(figures["by_category"]) == 6
    assert fuzz.failures(figures) == [], figures["samples"]
    assert figures["codes"]["bad_image"] > 0 and figures["codes"]["bad_params"] > 0
    assert not handle.thread.is_alive()

"""Waiting on a BackendClient's events in tests: on events, with a generous ceiling (the
machine running the tests may be slow and shared), never on fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from videoscene_protocol.client import BackendClient


def events_until(
    client: BackendClient, predicate: Callable[[Any], bool], timeout_s: float = 120.0
) -> list:
    """Poll until an event satisfies `predicate`; returns every event seen up to it."""
    seen: list = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in client.poll(timeout_ms=50):
            seen.append(event)
            if predicate(event):
                return seen
    raise AssertionError(f"condition not met within {timeout_s:g} s; saw {seen[-5:]}")

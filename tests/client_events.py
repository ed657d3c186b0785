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
    """Poll until an event satisfies `predicate`; returns every event seen up to it. The events
    after it in the same poll() batch go back to the client for its next poll(), as
    BackendClient.wait() does: a fast job's later frames_ready and result often arrive in the
    batch that holds the awaited one, and dropping them loses them for good."""
    seen: list = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = client.poll(timeout_ms=50)
        for index, event in enumerate(batch):
            seen.append(event)
            if predicate(event):
                client._pending[:0] = batch[index + 1 :]
                return seen
    raise AssertionError(f"condition not met within {timeout_s:g} s; saw {seen[-5:]}")

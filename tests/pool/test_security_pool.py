"""The front end's pinned scene PLYs are bounded in bytes as well as in count (finding 10 of
issue 21): clients' PLYs are up to the message limit each. No Ray start: ray.put is replaced."""

from __future__ import annotations

import pytest


def test_pinned_scenes_are_bounded_in_bytes(monkeypatch) -> None:
    # Imported here, not at collection: importing Ray reads RAY_AUTH_MODE once, and the pool
    # tests' Ray (started later in this process) must see the token mode the pool sets first.
    executor = pytest.importorskip("videoscene_backend.service.pool.executor")
    monkeypatch.setattr(executor.ray, "put", lambda data: ("ref", len(data)))
    scenes = executor.SceneRefs(capacity=64, max_bytes=100)
    for index in range(5):
        scenes.put(f"scene{index}", bytes(40))
    assert scenes.ids() == ["scene3", "scene4"]  # 80 bytes kept, the oldest went first
    scenes.put("huge", bytes(1000))  # over the budget alone: the newest is still kept
    assert scenes.ids() == ["huge"] and scenes.get("huge") == ("ref", 1000)

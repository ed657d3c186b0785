"""Scenes the backend keeps in memory under an id, so render jobs can refer to them."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from videoscene_protocol.errors import ErrorCode, VideoSceneError
from videoscene_protocol.wire import ID_RULE, is_valid_id

from .gaussians import GaussianScene


class SceneStore:
    """In-memory, least-recently-used store. A restarted backend forgets its scenes; clients
    re-send them from the PLY they saved (load_scene job)."""

    def __init__(self, capacity: int = 8) -> None:
        self._scenes: OrderedDict[str, GaussianScene] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def put(self, scene: GaussianScene, scene_id: str | None = None) -> str:
        if scene_id is not None and not is_valid_id(scene_id):
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"scene_id {scene_id!r:.80} is not a valid id.",
                f"Use {ID_RULE}.",
            )
        scene_id = scene_id or uuid.uuid4().hex[:12]
        with self._lock:
            self._scenes[scene_id] = scene
            self._scenes.move_to_end(scene_id)
            while len(self._scenes) > self._capacity:
                self._scenes.popitem(last=False)
        return scene_id

    def get(self, scene_id: str) -> GaussianScene:
        with self._lock:
            if scene_id not in self._scenes:
                raise VideoSceneError(
                    ErrorCode.UNKNOWN_SCENE,
                    f"The backend does not know scene {scene_id!r}.",
                    "The backend may have restarted: send the scene again with a load_scene job "
                    "(the PLY saved with the build result).",
                )
            self._scenes.move_to_end(scene_id)
            return self._scenes[scene_id]

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._scenes)

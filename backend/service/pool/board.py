"""The pool's board: one small Ray actor that every replica reports to.

Ray Serve routes a request to one replica and gives no way to address a chosen one, yet
`release_models` must reach every replica (idle ones too) and `status` must show what each
holds. Replicas therefore register here, report their models and scenes after every change, and
long-poll for commands (the same pattern Serve's own controller uses to push config): a command
posted by the front end reaches every live replica at once, and each acknowledges with its
answer. A replica that stops polling for REPLICA_SILENT_S counts as gone (killed, or its node
lost). The board holds no job data: running jobs, their progress and results travel on each
job's own stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import ray

POLL_WAIT_S = 5.0  # how long a replica's long-poll waits for a command before asking again
REPLICA_SILENT_S = 3 * POLL_WAIT_S


@ray.remote(num_cpus=0, max_concurrency=1000)
class PoolBoard:
    """Per-replica state and command broadcast. Async actor: every method runs on one loop."""

    def __init__(self) -> None:
        self._replicas: dict[str, dict[str, Any]] = {}
        self._commands: list[tuple[int, str]] = []
        self._answers: dict[int, dict[str, Any]] = {}
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:  # made on the actor's loop, at first use
            self._changed = asyncio.Condition()
        return self._changed

    async def register(self, replica_id: str, state: dict[str, Any]) -> int:
        """A replica starts: returns the sequence number it should poll after."""
        self._replicas[replica_id] = {**state, "seen": time.monotonic()}
        return self._commands[-1][0] if self._commands else 0

    async def report(self, replica_id: str, state: dict[str, Any]) -> None:
        entry = self._replicas.setdefault(replica_id, {})
        entry.update(state, seen=time.monotonic())

    async def next_command(self, replica_id: str, after: int) -> tuple[int, str] | None:
        """Long-poll: the first command after `after`, or None after POLL_WAIT_S."""
        if replica_id in self._replicas:
            self._replicas[replica_id]["seen"] = time.monotonic()
        condition = self._condition()
        async with condition:
            try:
                await asyncio.wait_for(
                    condition.wait_for(lambda: self._pending(after) is not None), POLL_WAIT_S
                )
            except TimeoutError:
                return None
            return self._pending(after)

    def _pending(self, after: int) -> tuple[int, str] | None:
        return next((command for command in self._commands if command[0] > after), None)

    async def post(self, command: str) -> tuple[int, list[str]]:
        """Broadcast a command; returns its number and the replicas expected to answer."""
        sequence = (self._commands[-1][0] if self._commands else 0) + 1
        self._commands = [*self._commands[-15:], (sequence, command)]
        self._answers[sequence] = {}
        condition = self._condition()
        async with condition:
            condition.notify_all()
        return sequence, self._live()

    async def answer(self, sequence: int, replica_id: str, answer: Any) -> None:
        self._answers.setdefault(sequence, {})[replica_id] = answer
        condition = self._condition()
        async with condition:
            condition.notify_all()

    async def answers(self, sequence: int, expected: list[str], wait_s: float) -> dict[str, Any]:
        """The answers to a command once every expected replica gave one, or after wait_s."""
        condition = self._condition()

        def complete() -> bool:
            got = self._answers.get(sequence, {})
            return all(replica in got or replica not in self._live() for replica in expected)

        async with condition:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(condition.wait_for(complete), wait_s)
        return self._answers.pop(sequence, {})

    async def snapshot(self) -> dict[str, dict[str, Any]]:
        """The live replicas' last reports, keyed by replica id."""
        live = self._live()
        return {
            replica: {k: v for k, v in state.items() if k != "seen"}
            for replica, state in self._replicas.items()
            if replica in live
        }

    def _live(self) -> list[str]:
        now = time.monotonic()
        return sorted(
            replica
            for replica, state in self._replicas.items()
            if now - state.get("seen", 0.0) < REPLICA_SILENT_S
        )

"""Held pulls (PullRequestHoldService): waiters per (topic, queue), woken when a message lands there."""

from __future__ import annotations

import anyio


class PullWaitTable:
    def __init__(self) -> None:
        self._waiters: dict[tuple[str, int], set[anyio.Event]] = {}

    def park(self, topic: str, queue_id: int) -> anyio.Event:
        event = anyio.Event()
        self._waiters.setdefault((topic, queue_id), set()).add(event)
        return event

    def cancel(self, topic: str, queue_id: int, event: anyio.Event) -> None:
        waiters = self._waiters.get((topic, queue_id))
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[(topic, queue_id)]

    def notify(self, topic: str, queue_id: int) -> None:
        for event in self._waiters.pop((topic, queue_id), ()):
            event.set()

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiters.values())

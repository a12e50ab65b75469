"""Held pulls (PullRequestHoldService): waiters per (topic, queue), woken when a message lands there."""

from __future__ import annotations

import anyio


class PullWaitTable:
    def __init__(self) -> None:
        self._waiters: dict[tuple[str, int], set[anyio.Event]] = {}
        self.closing = False  # set at shutdown: held pulls are answered at once instead of waiting

    def release_all(self) -> None:
        """Shutdown: wake every held pull so it is answered before its connection goes away (a Java 4.9
        client otherwise waits out its 30 s pull timeout after a broker restart)."""
        self.closing = True
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()
        self._waiters.clear()

    def wake_all(self) -> None:
        """Wake every held pull and receive to look again (the virtual clock moved: POP messages whose invisible
        time passed are due); a pull that still finds nothing goes on waiting."""
        for key in list(self._waiters):
            self.notify(*key)

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

    def park_all(self, topic: str, queue_ids: range) -> anyio.Event:
        """One event set by a message landing in any of the queues (a POP receive waits on a whole topic)."""
        event = anyio.Event()
        for queue_id in queue_ids:
            self._waiters.setdefault((topic, queue_id), set()).add(event)
        return event

    def cancel_all(self, topic: str, queue_ids: range, event: anyio.Event) -> None:
        for queue_id in queue_ids:
            self.cancel(topic, queue_id, event)

    def notify(self, topic: str, queue_id: int) -> None:
        for event in self._waiters.pop((topic, queue_id), ()):
            event.set()

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiters.values())

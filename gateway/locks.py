"""Queue locks for orderly consumers (RebalanceLockManager). Pure state; the clock is passed in.

A queue is locked per consumer group by one client id. The holder renews the lock by locking again; a lock not
renewed for ``max_live_ms`` (60 s by default) expires, and only then may another client of the group take it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MessageQueue = tuple[str, str, int]  # (topic, broker name, queue id)


@dataclass(slots=True)
class LockEntry:
    client_id: str
    last_update_ms: int


class QueueLockTable:
    def __init__(self, max_live_ms: int = 60_000) -> None:
        self.max_live_ms = max_live_ms
        self._locks: dict[str, dict[MessageQueue, LockEntry]] = {}

    def _expired(self, entry: LockEntry, now_ms: int) -> bool:
        return now_ms - entry.last_update_ms > self.max_live_ms

    def try_lock(self, group: str, client_id: str, queues: Iterable[MessageQueue], now_ms: int) -> list[MessageQueue]:
        """Lock (or renew) every queue that is free, expired or already ours; return those now held by us."""
        table = self._locks.setdefault(group, {})
        granted = []
        for mq in queues:
            entry = table.get(mq)
            if entry is None or entry.client_id == client_id or self._expired(entry, now_ms):
                table[mq] = LockEntry(client_id, now_ms)
                granted.append(mq)
        return granted

    def unlock(self, group: str, client_id: str, queues: Iterable[MessageQueue]) -> None:
        """Release the queues this client holds; locks held by others are left alone."""
        table = self._locks.get(group)
        if table is None:
            return
        for mq in queues:
            entry = table.get(mq)
            if entry is not None and entry.client_id == client_id:
                del table[mq]
        if not table:
            del self._locks[group]

    def holder(self, group: str, mq: MessageQueue, now_ms: int) -> str | None:
        entry = self._locks.get(group, {}).get(mq)
        return entry.client_id if entry is not None and not self._expired(entry, now_ms) else None

    def holds_any(self, group: str, now_ms: int) -> bool:
        """Whether any unexpired lock of this group exists (orderly consumption in progress)."""
        return any(not self._expired(e, now_ms) for e in self._locks.get(group, {}).values())

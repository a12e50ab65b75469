"""The live protocol trace: the most recent trace entries in memory, numbered, for the console and
``pocketmq trace --follow`` (GET /api/trace/recent).

Fed on the event loop while tracing is on (with or without a file), one append per entry: the entries are the
dicts the trace file's lines are encoded from (values already clipped), and are encoded only when asked for. At
most ``capacity`` are held; older ones fall out. Each gets the next sequence number, which never goes back while the
process runs, so a reader asks for what came after the last number it saw and learns how many it missed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LIVE_ENTRIES = 1000
# Fields the ``q`` filter looks in (as text, case-insensitively).
SEARCHED_FIELDS = ("name", "requestName", "method", "topic", "group", "client", "peer", "conn", "statusName")


@dataclass(slots=True, frozen=True)
class LiveFilter:
    q: str = ""  # a part of a searched field, any case; empty: every entry
    proto: str | None = None  # remoting | grpc

    def accepts(self, entry: Mapping[str, Any]) -> bool:
        if self.proto is not None and entry.get("proto") != self.proto:
            return False
        if not self.q:
            return True
        wanted = self.q.casefold()
        return any(wanted in str(entry.get(key) or "").casefold() for key in SEARCHED_FIELDS)


@dataclass(slots=True)
class Recent:
    """What ``TraceRing.recent`` picked: entries oldest first, with their numbers."""

    entries: list[tuple[int, Mapping[str, Any]]]
    seq: int  # the newest number given out: ask for after=seq next time
    oldest: int | None  # the oldest number still held
    missed: int  # entries after ``after`` that fell out of the ring before this read
    more: int  # entries after ``after`` that matched but were left out by ``limit`` (older than those returned)


class TraceRing:
    def __init__(self, capacity: int = LIVE_ENTRIES) -> None:
        if capacity < 1:
            raise ValueError(f"a trace ring holds at least 1 entry, not {capacity}")
        self.capacity = capacity
        self.seq = 0
        self._entries: deque[tuple[int, Mapping[str, Any]]] = deque(maxlen=capacity)

    def put(self, entry: Mapping[str, Any]) -> None:
        self.seq += 1
        self._entries.append((self.seq, entry))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def oldest(self) -> int | None:
        return self._entries[0][0] if self._entries else None

    def recent(self, after: int, limit: int, wanted: LiveFilter) -> Recent:
        """The newest ``limit`` entries numbered above ``after`` that ``wanted`` accepts, oldest first. Looks only
        at the entries after ``after`` (none, at a poll that finds nothing new)."""
        picked: list[tuple[int, Mapping[str, Any]]] = []
        more = 0
        for seq, entry in reversed(self._entries):
            if seq <= after:
                break
            if wanted.accepts(entry):
                if len(picked) < limit:
                    picked.append((seq, entry))
                else:
                    more += 1
        picked.reverse()
        oldest = self.oldest
        first_held = oldest if oldest is not None else self.seq + 1
        missed = max(0, first_held - after - 1) if after < self.seq else 0
        return Recent(picked, self.seq, oldest, missed, more)

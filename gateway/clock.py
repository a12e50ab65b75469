"""The broker's clock, in one place: the system clock, a fake one for unit tests, and the virtual clock of
``pocketmq up --clock virtual`` (time moves only when told)."""

from __future__ import annotations

import re
import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in ms since the epoch (message timestamps and due times use it)."""

    async def sleep_until(self, deadline_ms: int, wake: anyio.Event) -> None:
        """Return at ``deadline_ms`` or as soon as ``wake`` is set, whichever comes first."""


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep_until(self, deadline_ms: int, wake: anyio.Event) -> None:
        delay = (deadline_ms - self.now_ms()) / 1000
        if delay > 0:
            with anyio.move_on_after(delay):
                await wake.wait()


class FakeClock:
    """A clock that moves only when told to (``advance``); sleepers wake when their deadline is reached."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._moved = anyio.Event()

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms
        self._moved.set()
        self._moved = anyio.Event()

    async def sleep_until(self, deadline_ms: int, wake: anyio.Event) -> None:
        while self._now < deadline_ms and not wake.is_set():
            moved = self._moved
            async with anyio.create_task_group() as tg:

                async def on_wake() -> None:
                    await wake.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(on_wake)
                await moved.wait()
                tg.cancel_scope.cancel()


class VirtualClock:
    """``pocketmq up --clock virtual``: starts at the wall-clock time and moves only by ``set_now`` (which
    ``gateway.clock_control.ClockControl.advance`` calls step by step). Sleepers wake when their deadline is
    reached; a sleeper costs one dict entry, no task."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = int(time.time() * 1000) if start_ms is None else start_ms
        self._sleepers: dict[anyio.Event, int] = {}  # wake event -> deadline
        self.moving = anyio.Lock()  # held by an advance: one at a time, so each one's steps stay in order

    def now_ms(self) -> int:
        return self._now

    def set_now(self, now_ms: int) -> None:
        """Move to ``now_ms`` (never back) and wake every sleeper whose deadline is reached."""
        if now_ms < self._now:
            raise ValueError(f"the virtual clock only moves forward ({now_ms} < {self._now})")
        self._now = now_ms
        for wake, deadline in list(self._sleepers.items()):
            if deadline <= now_ms:
                wake.set()

    async def sleep_until(self, deadline_ms: int, wake: anyio.Event) -> None:
        if self._now >= deadline_ms or wake.is_set():
            return
        self._sleepers[wake] = deadline_ms
        try:
            await wake.wait()
        finally:
            self._sleepers.pop(wake, None)


MAX_ADVANCE_MS = 10 * 365 * 24 * 3_600_000  # ten years: beyond any timer a broker accepts
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> int:
    """``2h``, ``90s``, ``500ms``, ``1h30m``, ``1.5d`` (or plain milliseconds, ``2500``) -> ms. ValueError, with
    what is wrong, for anything else, a negative or zero duration, or one longer than ten years."""
    spec = text.strip().lower()
    if not spec:
        raise ValueError("empty duration; write e.g. 2h, 90s, 500ms or 1h30m")
    if spec.isdigit():
        ms = int(spec)
    else:
        pos, total = 0, 0.0
        for part in _DURATION_PART.finditer(spec):
            if part.start() != pos:
                break
            total += float(part.group(1)) * _UNIT_MS[part.group(2)]
            pos = part.end()
        if pos != len(spec) or pos == 0:
            raise ValueError(f"not a duration: {text[:40]!r}; write e.g. 2h, 90s, 500ms or 1h30m")
        ms = round(total)
    return check_advance_ms(ms)


def check_advance_ms(ms: int) -> int:
    """``ms`` if it is a duration the virtual clock can move by, else ValueError saying why."""
    if ms <= 0:
        raise ValueError(f"the duration must be positive, not {ms} ms")
    if ms > MAX_ADVANCE_MS:
        raise ValueError(f"the duration {ms} ms is longer than ten years ({MAX_ADVANCE_MS} ms)")
    return ms

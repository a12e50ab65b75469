"""The broker's clock, in one place, so tests (and later a user-facing virtual clock) can drive time."""

from __future__ import annotations

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

"""Rate-limited logging: what a hostile client, a failing disk or a bug hit in a loop cannot flood the log with."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most ``burst`` lines per ``interval_s``; the first line of a later interval says how many were dropped."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.burst = burst
        self.clock = clock
        self.suppressed = 0
        self._window_start: float | None = None
        self._logged = 0

    def error(self, msg: str, *args: object, exc_info: BaseException | None = None) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=exc_info)

    def warning(self, msg: str, *args: object) -> None:
        self.log(logging.WARNING, msg, *args)

    def info(self, msg: str, *args: object) -> None:
        self.log(logging.INFO, msg, *args)

    def log(self, level: int, msg: str, *args: object, exc_info: BaseException | None = None) -> None:
        now = self.clock()
        start = self._window_start
        if start is None or now - start >= self.interval_s:
            self._window_start, self._logged = now, 0
        if self._logged >= self.burst:
            self.suppressed += 1
            return
        self._logged += 1
        if self.suppressed:
            since = now - start if start is not None else 0.0
            msg += f" ({self.suppressed} more like this in the last {since:.0f} s)"
            self.suppressed = 0
        self.logger.log(level, msg, *args, exc_info=exc_info)


class RateLimitedLogs:
    """One ``RateLimitedLog`` per kind of event (each failing write path, say), created on first use."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make = lambda: RateLimitedLog(logger, interval_s, burst, clock)
        self._kinds: dict[str, RateLimitedLog] = {}

    def __getitem__(self, kind: str) -> RateLimitedLog:
        log = self._kinds.get(kind)
        if log is None:
            log = self._kinds[kind] = self._make()
        return log

    def warning(self, kind: str, msg: str, *args: object) -> None:
        self[kind].warning(msg, *args)

    def suppressed(self, kind: str) -> int:
        log = self._kinds.get(kind)
        return log.suppressed if log is not None else 0

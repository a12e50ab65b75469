"""Background jobs that outlive their own failures: a bug or a full disk in one job never takes the process down."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from runtime.logs import RateLimitedLog

log = logging.getLogger("pocketmq")

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0
HEALTHY_AFTER_S = 60.0  # a job that ran this long before failing starts its back-off afresh


async def supervised(name: str, job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` until it returns; when it raises, log it (with its traceback, at most once a minute) and start
    it again after a back-off that doubles from 1 s to 30 s. Cancellation passes through."""
    failures = RateLimitedLog(log, interval_s=60.0)
    delay = FIRST_RETRY_S
    while True:
        started = anyio.current_time()
        try:
            await job()
            return
        except Exception as err:
            failures.error("background job %s failed; restarting it in %g s: %r", name, delay, err, exc_info=err)
        if anyio.current_time() - started >= HEALTHY_AFTER_S:
            delay = FIRST_RETRY_S
        await anyio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_S)

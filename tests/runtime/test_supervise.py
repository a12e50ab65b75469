"""Supervised background jobs restart after a failure instead of ending the process."""

from __future__ import annotations

import logging

import anyio
import pytest

from runtime import supervise
from runtime.logs import RateLimitedLog
from runtime.supervise import supervised


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "FIRST_RETRY_S", 0.01)
    monkeypatch.setattr(supervise, "MAX_RETRY_S", 0.04)


async def test_a_failing_job_is_restarted_until_it_finishes(caplog: pytest.LogCaptureFixture) -> None:
    runs = []

    async def job() -> None:
        runs.append(1)
        if len(runs) < 4:
            raise OSError("database or disk is full")

    with anyio.fail_after(5):
        await supervised("flaky", job)
    assert len(runs) == 4
    failures = [r for r in caplog.records if "background job flaky failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info  # once per minute, with its traceback


async def test_cancellation_passes_through() -> None:
    async def job() -> None:
        await anyio.sleep_forever()

    with anyio.move_on_after(0.05) as scope:
        await supervised("forever", job)
    assert scope.cancelled_caught


def test_rate_limited_log_allows_a_burst_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("test.burst"), interval_s=10.0, burst=3, clock=lambda: now[0])
    for i in range(10):
        log.warning("line %d", i)
    now[0] = 10.0
    log.warning("later")
    assert [r.getMessage() for r in caplog.records] == [
        "line 0", "line 1", "line 2", "later (7 more like this in the last 10 s)",
    ]  # fmt: skip

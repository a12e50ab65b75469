"""The virtual clock alone: durations, sleepers woken at their deadline and never before, the clock never going
back, and the deleteWhen hours an advance stops at."""

from __future__ import annotations

import datetime

import anyio
import pytest

from gateway.clock import MAX_ADVANCE_MS, VirtualClock, parse_duration
from gateway.clock_control import next_delete_hour_start

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("2h", 7_200_000), ("90s", 90_000), ("500ms", 500), ("1h30m", 5_400_000), ("1.5d", 129_600_000),
     ("2500", 2_500), (" 10M ", 600_000), ("73h", 262_800_000), ("1m1s1ms", 61_001)],
)  # fmt: skip
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "empty"), ("2", None), ("-5s", "not a duration"), ("0s", "positive"), ("0", "positive"),
     ("h", "not a duration"), ("2x", "not a duration"), ("2h ago", "not a duration"), ("1e9h", "not a duration"),
     ("99999999d", "ten years"), ("0.0001ms", "positive"), ("ms2", "not a duration")],
)  # fmt: skip
def test_bad_durations_say_what_is_wrong(text: str, why: str | None) -> None:
    if why is None:
        assert parse_duration(text) == 2
        return
    with pytest.raises(ValueError, match=why):
        parse_duration(text)


def test_the_limit_is_ten_years() -> None:
    assert parse_duration(str(MAX_ADVANCE_MS)) == MAX_ADVANCE_MS
    with pytest.raises(ValueError, match="ten years"):
        parse_duration(str(MAX_ADVANCE_MS + 1))


async def test_a_sleeper_wakes_at_its_deadline_and_not_before() -> None:
    clock = VirtualClock(start_ms=1_000)
    woke: list[int] = []

    async def sleeper(deadline: int) -> None:
        await clock.sleep_until(deadline, anyio.Event())
        woke.append(deadline)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, 5_000)
        tg.start_soon(sleeper, 2_000)
        await anyio.sleep(0.01)
        clock.set_now(1_999)
        await anyio.sleep(0.01)
        assert woke == []
        clock.set_now(2_000)
        await anyio.sleep(0.01)
        assert woke == [2_000]
        clock.set_now(9_000)
    assert woke == [2_000, 5_000]


async def test_a_wake_event_ends_the_sleep_early_and_a_past_deadline_returns_at_once() -> None:
    clock = VirtualClock(start_ms=1_000)
    wake = anyio.Event()
    with anyio.fail_after(1):
        await clock.sleep_until(1_000, wake)
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.sleep_until, 10**12, wake)
            await anyio.sleep(0.01)
            wake.set()


def test_the_clock_starts_at_now_and_never_goes_back() -> None:
    clock = VirtualClock()
    now = clock.now_ms()
    assert abs(now - datetime.datetime.now().timestamp() * 1000) < 5_000
    with pytest.raises(ValueError, match="only moves forward"):
        clock.set_now(now - 1)
    assert clock.now_ms() == now


def test_next_delete_hour_start_is_the_next_listed_local_hour() -> None:
    at = datetime.datetime(2026, 12, 2, 3, 59, 59)
    start = next_delete_hour_start("04", int(at.timestamp() * 1000))
    assert start == int(datetime.datetime(2026, 12, 2, 4).timestamp() * 1000)
    at_four = int(datetime.datetime(2026, 12, 2, 4, 30).timestamp() * 1000)
    assert next_delete_hour_start("04", at_four) == int(datetime.datetime(2026, 12, 3, 4).timestamp() * 1000)
    assert next_delete_hour_start("01;13", at_four) == int(datetime.datetime(2026, 12, 2, 13).timestamp() * 1000)
    assert next_delete_hour_start("never", at_four) is None

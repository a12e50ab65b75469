"""Retention in the broker (gateway/retention.py) with an injected clock and disk: when it deletes (deleteWhen,
diskMaxUsedSpaceRatio, the forcible ratio, DELETE_EXPIRED_COMMITLOG), and what clients see afterwards (minimum
offsets, pulls below them answered PULL_OFFSET_MOVED as Apache answers OFFSET_TOO_SMALL)."""

from __future__ import annotations

import datetime
import time

import pytest

from codec.codes import RequestCode, ResponseCode
from gateway.clock import FakeClock
from gateway.retention import STEP_BYTES, Retention, is_time_to_delete

HOUR = 3_600_000


class Disk:
    """shutil.disk_usage with a chosen fill ratio."""

    def __init__(self, ratio: float = 0.10) -> None:
        self.ratio = ratio

    def __call__(self, path: str) -> tuple[int, int, int]:
        total = 100 * 1024**3
        used = int(total * self.ratio)
        return total, used, total - used


def at_hour(hour: int) -> FakeClock:
    """A clock at ``hour`` o'clock local time today."""
    today = datetime.datetime.now().replace(hour=hour, minute=30, second=0, microsecond=0)
    return FakeClock(start_ms=int(today.timestamp() * 1000))


async def send_some(bc, topic: str, count: int) -> None:
    for i in range(count):
        await bc.send_ok(topic, f"m{i}".encode(), queue_id=0)


def test_delete_when_names_hours() -> None:
    assert is_time_to_delete("04", 4) and not is_time_to_delete("04", 5)
    assert is_time_to_delete("01;13; 22", 22)
    assert not is_time_to_delete("", 0) and not is_time_to_delete("x;4a", 4)


async def test_expired_messages_go_at_the_delete_hour_and_pulls_below_are_moved(cluster, namesrv, bc_at) -> None:
    clock = at_hour(3)
    broker, bc = await bc_at(clock, delete_when="04", file_reserved_time_h=72.0)
    retention = Retention(broker.store, broker.config, clock, Disk(0.10))
    await send_some(bc, "Aged", 5)
    clock.advance(48 * HOUR)
    await send_some(bc, "Aged", 3)  # the newer chunk(s)

    clock.advance(25 * HOUR)  # 04:30, 73 h after the first five
    assert (await retention.run_once()).reason == "time"

    low = broker.store.min_offset("Aged", 0)
    assert 5 <= low <= 7 and broker.store.max_offset("Aged", 0) == 8
    answer = await bc.invoke(RequestCode.GET_MIN_OFFSET, {"topic": "Aged", "queueId": "0"})
    assert int(answer.ext_fields["offset"]) == low
    moved = await bc.pull("Aged", 0, 0)
    assert moved.code == ResponseCode.PULL_OFFSET_MOVED
    assert int(moved.ext_fields["nextBeginOffset"]) == low
    assert [m.body for m in await bc.pull_records("Aged", 0, low)][-1] == b"m2"


async def test_not_the_hour_and_room_on_disk_nothing_goes(cluster, namesrv, bc_at) -> None:
    clock = at_hour(10)
    broker, bc = await bc_at(clock, delete_when="04")
    retention = Retention(broker.store, broker.config, clock, Disk(0.50))
    await send_some(bc, "Kept", 4)
    clock.advance(100 * HOUR - 24 * HOUR)  # 10:30 again, 76 h later
    assert (await retention.run_once()).reason == ""
    assert broker.store.min_offset("Kept", 0) == 0


async def test_a_full_disk_deletes_expired_at_any_hour(cluster, namesrv, bc_at) -> None:
    clock = at_hour(10)
    broker, bc = await bc_at(clock, delete_when="04", file_reserved_time_h=1.0)
    retention = Retention(broker.store, broker.config, clock, Disk(0.80))
    await send_some(bc, "Full", 4)
    clock.advance(2 * HOUR)
    result = await retention.run_once()
    assert result.reason == "disk" and result.expired.messages == 3
    assert broker.store.min_offset("Full", 0) == 3


async def test_past_the_forcible_ratio_even_young_messages_go(cluster, namesrv, bc_at) -> None:
    clock = at_hour(10)
    broker, bc = await bc_at(clock)
    retention = Retention(broker.store, broker.config, clock, Disk(0.90))
    await send_some(bc, "Young", 4)
    result = await retention.run_once()
    assert result.reason == "forced" and result.expired.messages == 3
    broker.config.clean_file_forcibly_enable = False
    assert (await retention.run_once()).reason == "disk"  # over 75 %: expired only, and none is


async def test_delete_expired_commitlog_asks_for_passes_at_any_hour(cluster, namesrv, bc_at) -> None:
    clock = at_hour(10)
    broker, bc = await bc_at(clock, delete_when="04", file_reserved_time_h=0.5)
    broker.ctx.retention.disk_usage = Disk(0.10)
    await send_some(bc, "Manual", 3)
    clock.advance(HOUR)
    assert (await broker.ctx.retention.run_once()).reason == ""
    answer = await bc.invoke(RequestCode.DELETE_EXPIRED_COMMITLOG)
    assert answer.code == ResponseCode.SUCCESS
    result = await broker.ctx.retention.run_once()
    assert result.reason == "manual" and result.expired.messages == 2
    assert broker.ctx.retention.deleted_messages == 2


async def test_a_pass_deletes_in_steps(cluster, namesrv, bc_at) -> None:
    clock = at_hour(4)
    broker, bc = await bc_at(clock, delete_when="06", file_reserved_time_h=1.0)
    retention = Retention(broker.store, broker.config, clock, Disk(0.10))
    body = b"x" * (1024 * 1024)
    for _ in range(STEP_BYTES // len(body) + 4):
        await bc.send_ok("Steps", body, queue_id=0)
    steps = []
    expire = broker.store.expire

    async def counting(*args, **kwargs):
        steps.append(await expire(*args, **kwargs))
        return steps[-1]

    broker.store.expire = counting  # type: ignore[method-assign]
    clock.advance(2 * HOUR)
    result = await retention.run_once()
    assert len(steps) >= 2 and steps[0].more
    assert result.expired.messages == STEP_BYTES // len(body) + 3


@pytest.fixture
def bc_at(cluster, open_broker_client):
    async def start(clock: FakeClock, **config):
        broker = await cluster.start_broker(clock=clock, clean_resource_interval_ms=3_600_000, **config)
        return broker, await open_broker_client(broker)

    return start


def test_the_fake_clock_hour_is_local_time() -> None:
    clock = at_hour(4)
    assert time.localtime(clock.now_ms() / 1000).tm_hour == 4

"""Delayed and scheduled messages end to end over the wire, driven by a fake clock (and once by the real one)."""

from __future__ import annotations

import time

import anyio
import pytest

from codec.batch import BatchItem, encode_batch
from codec.codes import PullSysFlag
from codec.message_id import decode_offset_msg_id
from codec.properties import decode_properties
from codec.record import decode_records
from gateway.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=int(time.time() * 1000))


@pytest.fixture
async def fake_bc(cluster, namesrv, open_broker_client, clock):
    broker = await cluster.start_broker(clock=clock)
    return await open_broker_client(broker)


async def settle() -> None:
    """Let the scheduler task observe a clock change and commit its hand-over."""
    await anyio.sleep(0.1)


async def test_a_delay_level_message_is_invisible_until_due_then_arrives_with_apache_properties(fake_bc, clock):
    response = await fake_bc.send_ok("Reminders", b"pay now", queue_id=2, properties={"DELAY": "2", "KEYS": "o-1"})
    assert response.ext_fields["queueId"] == "2"  # the queue asked for, not the schedule queue
    _, _, phys = decode_offset_msg_id(response.ext_fields["msgId"])
    assert await fake_bc.max_offset("Reminders", 2) == 0

    clock.advance(4_999)  # level 2 is 5 s
    await settle()
    assert await fake_bc.max_offset("Reminders", 2) == 0
    clock.advance(1)
    await settle()
    [msg] = await fake_bc.pull_records("Reminders", 2, 0)
    assert (msg.topic, msg.queue_id, msg.body) == ("Reminders", 2, b"pay now")
    assert msg.phys_offset != phys  # a new message in the real queue, as Apache writes one
    props = decode_properties(msg.properties)
    assert (props["REAL_TOPIC"], props["REAL_QID"], props["KEYS"], props["WAIT"]) == ("Reminders", "2", "o-1", "false")
    assert "DELAY" not in props  # ScheduleMessageService.messageTimeup clears it


async def test_exact_delivery_time_and_due_time_order(fake_bc, clock):
    now = clock.now_ms()
    for label, offset_ms in (("third", 300), ("first", 100), ("second", 200)):
        await fake_bc.send_ok("Timed", label.encode(), properties={"TIMER_DELIVER_MS": str(now + offset_ms)})
    clock.advance(1_000)
    await settle()
    msgs = await fake_bc.pull_records("Timed", 0, 0)
    assert [m.body for m in msgs] == [b"first", b"second", b"third"]
    for m in msgs:
        props = decode_properties(m.properties)
        assert "REAL_TOPIC" not in props and "REAL_QID" not in props  # removed for timer messages
        assert props["TIMER_DELIVER_MS"]


@pytest.mark.parametrize("prop", [{"TIMER_DELAY_SEC": "2"}, {"TIMER_DELAY_MS": "2000"}])
async def test_relative_timers(fake_bc, clock, prop):
    await fake_bc.send_ok("Relative", b"x", properties=prop)
    clock.advance(1_999)
    await settle()
    assert await fake_bc.max_offset("Relative", 0) == 0
    clock.advance(1)
    await settle()
    assert await fake_bc.max_offset("Relative", 0) == 1


async def test_start_deliver_time_of_tdmq_and_ons_clients(fake_bc, clock):
    await fake_bc.send_ok("Ons", b"x", properties={"__STARTDELIVERTIME": str(clock.now_ms() + 60_000)})
    clock.advance(59_000)
    await settle()
    assert await fake_bc.max_offset("Ons", 0) == 0
    clock.advance(1_000)
    await settle()
    assert await fake_bc.max_offset("Ons", 0) == 1


async def test_a_time_in_the_past_delivers_at_once(fake_bc, clock):
    await fake_bc.send_ok("Past", b"x", properties={"TIMER_DELIVER_MS": str(clock.now_ms() - 5_000)})
    assert await fake_bc.max_offset("Past", 0) == 1


async def test_beyond_the_maximum_delay_is_refused(fake_bc, clock):
    too_far = clock.now_ms() + 40 * 86_400_000 + 1
    response = await fake_bc.send("Far", b"x", properties={"TIMER_DELIVER_MS": str(too_far)})
    assert response.code == 13 and "maximum delay" in response.remark
    assert response.ext_fields["MSG_REGION"] == "DefaultRegion"


async def test_a_held_pull_is_woken_by_the_hand_over(fake_bc, open_broker_client, clock):
    consumer = await open_broker_client(fake_bc.broker)
    result = {}

    async def held() -> None:
        result["r"] = await consumer.pull("Wake", 0, 0, sys_flag=PullSysFlag.SUSPEND, suspend_ms=10_000, timeout=5)

    await fake_bc.send_ok("Wake", b"later", properties={"DELAY": "1"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(held)
        await anyio.sleep(0.1)
        assert "r" not in result
        clock.advance(1_000)
    assert result["r"].code == 0
    assert [m.body for m in decode_records(result["r"].body)] == [b"later"]


async def test_overdue_messages_are_delivered_right_after_a_restart_and_later_ones_on_time(
    cluster, namesrv, open_broker_client, clock
):
    first = await cluster.start_broker(clock=clock)
    bc = await open_broker_client(first)
    now = clock.now_ms()
    await bc.send_ok("Downtime", b"during", properties={"TIMER_DELIVER_MS": str(now + 1_000)})
    await bc.send_ok("Downtime", b"after", properties={"TIMER_DELIVER_MS": str(now + 60_000)})
    await cluster.stop(first)

    clock.advance(5_000)  # the broker was down when the first one fell due
    second = await cluster.start_broker(clock=clock)
    bc = await open_broker_client(second)
    await settle()
    assert [m.body for m in await bc.pull_records("Downtime", 0, 0)] == [b"during"]
    clock.advance(55_000)
    await settle()
    assert [m.body for m in await bc.pull_records("Downtime", 0, 0)] == [b"during", b"after"]
    assert await second.store.scheduled_count() == 0


async def test_batches_with_a_delay_are_refused(bc):
    body = encode_batch([BatchItem(b"a", "DELAY\x011\x02")])
    response = await bc.send("DelayBatch", body, batch=True)
    assert response.code == 13


async def test_real_clock_delivery_is_close_to_due(bc, open_broker_client):
    consumer = await open_broker_client(bc.broker)
    sent_at = time.monotonic()
    await bc.send_ok("RealClock", b"x", properties={"TIMER_DELAY_MS": "300"})
    response = await consumer.pull("RealClock", 0, 0, sys_flag=PullSysFlag.SUSPEND, suspend_ms=5_000, timeout=6)
    elapsed = time.monotonic() - sent_at
    assert response.code == 0
    assert 0.29 <= elapsed < 2.0, elapsed  # a correctness bound, not a precision target (see bench/)

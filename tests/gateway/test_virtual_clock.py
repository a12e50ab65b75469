"""The virtual clock in a running broker: ``ClockControl.advance`` fires what is due on the way, in due-time order,
with the due time as the store time (delays, timers, transaction back-checks, retention), POP messages come back
once their invisible time has passed, and the HTTP API moves it (or refuses to, with a system clock)."""

from __future__ import annotations

import datetime
import json
import socket
import time
from typing import Any

import anyio
import pytest

from codec import jsonbody
from codec.codes import RequestCode
from codec.message_id import decode_offset_msg_id
from gateway.clock import VirtualClock
from gateway.clock_control import ClockControl, ClockError
from gateway.pop import PopService, ReceiveRequest

pytestmark = pytest.mark.timeout(60)
HOUR = 3_600_000


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def vbroker(cluster, namesrv, clock):  # type: ignore[no-untyped-def]
    return await cluster.start_broker(clock=clock, clean_resource_interval_ms=3_600_000)


@pytest.fixture
async def vbc(open_broker_client, vbroker):  # type: ignore[no-untyped-def]
    return await open_broker_client(vbroker)


@pytest.fixture
def control(vbroker) -> ClockControl:  # type: ignore[no-untyped-def]
    return ClockControl(vbroker.ctx)


async def test_a_two_hour_delay_is_delivered_after_advance_and_not_before(vbc, control, clock) -> None:  # type: ignore[no-untyped-def]
    sent_at = clock.now_ms()
    await vbc.send_ok("Later", b"in two hours", properties={"DELAY": "18"})  # level 18: 2 h
    started = time.monotonic()
    before = await control.advance(2 * HOUR - 1)
    assert before.delivered == 0 and await vbc.max_offset("Later") == 0
    after = await control.advance(1)
    assert after.delivered == 1
    [msg] = await vbc.pull_records("Later")
    assert msg.body == b"in two hours"
    assert msg.store_timestamp == sent_at + 2 * HOUR == clock.now_ms()
    assert time.monotonic() - started < 2.0, "two hours of broker time in well under two seconds"


async def test_an_advance_fires_what_is_due_in_due_order_each_at_its_time(vbc, control, clock) -> None:  # type: ignore[no-untyped-def]
    now = clock.now_ms()
    await vbc.send_ok("Timed", b"in an hour", properties={"TIMER_DELIVER_MS": str(now + HOUR)})
    await vbc.send_ok("Timed", b"in ten seconds", properties={"TIMER_DELAY_SEC": "10"})
    await vbc.send_ok("Timed", b"in an hour too", properties={"TIMER_DELIVER_MS": str(now + HOUR)})
    done = await control.advance(2 * HOUR)
    assert (done.delivered, done.from_ms, done.now_ms) == (3, now, now + 2 * HOUR)
    assert done.steps >= 3  # +10 s, +1 h, +2 h (and any deleteWhen hour on the way)
    msgs = await vbc.pull_records("Timed")
    assert [m.body for m in msgs] == [b"in ten seconds", b"in an hour", b"in an hour too"]
    assert [m.store_timestamp for m in msgs] == [now + 10_000, now + HOUR, now + HOUR]
    assert clock.now_ms() == now + 2 * HOUR


async def test_a_retry_back_off_follows_the_virtual_clock(vbc, control, clock) -> None:  # type: ignore[no-untyped-def]
    await vbc.send_ok("Work", b"fails once")
    [msg] = await vbc.pull_records("Work")
    fields = {"group": "workers", "offset": str(msg.phys_offset), "delayLevel": "0", "originMsgId": "",
              "originTopic": "Work", "maxReconsumeTimes": "16"}  # fmt: skip
    assert (await vbc.invoke(RequestCode.CONSUMER_SEND_MSG_BACK, fields)).code == 0
    retry_topic = "%RETRY%workers"
    assert (await control.advance(9_999)).delivered == 0  # the first retry waits 10 s (level 3)
    assert (await control.advance(1)).delivered == 1
    [again] = await vbc.pull_records(retry_topic)
    assert again.body == b"fails once" and again.store_timestamp == clock.now_ms()


async def producer_heartbeat(bc, group: str = "txg") -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"clientID": "producer-1", "producerDataSet": [{"groupName": group}], "consumerDataSet": []})
    assert (await bc.invoke(RequestCode.HEART_BEAT, body=body.encode())).code == 0


async def test_a_transaction_back_check_is_sent_when_the_clock_passes_its_time(vbc, control, clock) -> None:  # type: ignore[no-untyped-def]
    await producer_heartbeat(vbc)
    props = {"TRAN_MSG": "true", "PGROUP": "txg"}
    response = await vbc.send_ok("Payments", b"order-1", queue_id=1, properties=props, sys_flag=0x4)
    _, _, phys = decode_offset_msg_id(response.ext_fields["msgId"])
    timeout_ms = vbc.broker.config.transaction_timeout_ms
    assert (await control.advance(timeout_ms - 1)).checks_sent == 0
    with pytest.raises(TimeoutError):
        await vbc.client.receive(timeout=0.2)
    assert (await control.advance(1)).checks_sent == 1
    check = await vbc.client.receive(timeout=2)
    assert check.code == RequestCode.CHECK_TRANSACTION_STATE
    assert check.ext_fields["commitLogOffset"] == str(phys)
    tx_id = response.ext_fields["transactionId"]
    end = {"producerGroup": "txg", "tranStateTableOffset": response.ext_fields["queueOffset"],
           "commitLogOffset": str(phys), "commitOrRollback": "8", "fromTransactionCheck": "true",
           "msgId": tx_id, "transactionId": tx_id}  # fmt: skip
    assert (await vbc.invoke(RequestCode.END_TRANSACTION, end)).code == 0
    [msg] = await vbc.pull_records("Payments", 1)
    assert msg.body == b"order-1" and msg.store_timestamp == clock.now_ms()


def pop_request(invisible_ms: int) -> ReceiveRequest:
    return ReceiveRequest("popg", "PopT", None, 32, invisible_ms, False, 17)


async def test_a_pop_message_comes_back_once_its_invisible_time_has_passed(vbroker, vbc, control) -> None:  # type: ignore[no-untyped-def]
    await vbc.send_ok("PopT", b"not acked")
    pop = PopService(vbroker.ctx)
    [first] = await pop.receive_now(pop_request(30_000))
    await control.advance(29_999)
    assert await pop.receive_now(pop_request(30_000)) == []
    # A receive holding (long polling, 20 s of real time) is answered as soon as the clock passes the time.
    async with anyio.create_task_group() as tg:
        got: list[Any] = []

        async def hold() -> None:
            got.extend(await pop.receive(pop_request(30_000), poll_ms=20_000))

        tg.start_soon(hold)
        await anyio.sleep(0.05)
        started = time.monotonic()
        await control.advance(1)
        with anyio.fail_after(2):
            while not got:  # noqa: ASYNC110
                await anyio.sleep(0.01)
    assert time.monotonic() - started < 2.0
    [again] = got
    assert again.message.body == b"not acked" and (first.attempt, again.attempt) == (1, 2)


async def lock(bc, client: str, queue_id: int) -> bool:  # type: ignore[no-untyped-def]
    mqs = [{"brokerName": "broker-a", "queueId": queue_id, "topic": "Ordered"}]
    body = json.dumps({"clientId": client, "consumerGroup": "og", "mqSet": mqs, "onlyThisBroker": False}).encode()
    response = await bc.invoke(RequestCode.LOCK_BATCH_MQ, body=body)
    assert response.code == 0
    return bool(json.loads(response.body)["lockOKMQSet"])


async def test_a_queue_lock_expires_when_the_clock_passes_its_live_time(vbc, control) -> None:  # type: ignore[no-untyped-def]
    assert await lock(vbc, "c1", 0)
    await control.advance(60_000)  # rebalanceLockMaxLiveTime: held up to and including 60 s
    assert not await lock(vbc, "c2", 0)
    await control.advance(1)
    assert await lock(vbc, "c2", 0)


def local_ms(day: datetime.date, hour: int, minute: int) -> int:
    return int(datetime.datetime.combine(day, datetime.time(hour, minute)).timestamp() * 1000)


async def test_retention_deletes_after_73_hours_at_the_delete_hour(cluster, namesrv, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock(start_ms=local_ms(datetime.date.today(), 3, 30))
    broker = await cluster.start_broker(clock=clock, clean_resource_interval_ms=3_600_000, delete_when="04")
    broker.ctx.retention.disk_usage = lambda _path: (100, 1, 99)  # whatever this machine's disk holds
    bc = await open_broker_client(broker)
    for i in range(3):
        await bc.send_ok("Old", f"m{i}".encode())
    control = ClockControl(broker.ctx)
    await control.advance(48 * HOUR)
    for i in range(3, 6):
        await bc.send_ok("Old", f"m{i}".encode())  # newer chunks: a queue's newest chunk always stays
    assert (await control.advance(24 * HOUR)).expired == 0  # passed three 04:00s, each before 72 h of age
    assert broker.store.min_offset("Old", 0) == 0
    done = await control.advance(HOUR)  # passes 04:00, the first three 72.5 h old
    assert done.expired == 3
    assert broker.store.min_offset("Old", 0) == 3 and broker.store.max_offset("Old", 0) == 6


async def test_a_system_clock_cannot_be_moved(broker) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClockError, match="--clock virtual"):
        ClockControl(broker.ctx)


# ---- HTTP API ----------------------------------------------------------------------------------------------


def _exchange(port: int, raw: bytes) -> tuple[int, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), jsonbody.loads(body)


async def http_get(port: int, path: str) -> tuple[int, Any]:
    return await anyio.to_thread.run_sync(_exchange, port, f"GET {path} HTTP/1.1\r\n\r\n".encode())


async def http_post(port: int, path: str, fields: Any) -> tuple[int, Any]:
    body = jsonbody.dumps(fields)
    head = f"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return await anyio.to_thread.run_sync(_exchange, port, head.encode() + body)


@pytest.fixture
async def http_vbroker(cluster, namesrv, clock):  # type: ignore[no-untyped-def]
    broker = await cluster.start_broker(clock=clock, http_port=0, clean_resource_interval_ms=3_600_000)
    with anyio.fail_after(10):
        await broker.http_settled.wait()
    return broker


async def test_the_http_api_shows_and_moves_the_virtual_clock(http_vbroker, open_broker_client, clock) -> None:  # type: ignore[no-untyped-def]
    port = http_vbroker.http_port
    bc = await open_broker_client(http_vbroker)
    start = clock.now_ms()
    status, shown = await http_get(port, "/api/clock")
    assert status == 200 and (shown["mode"], shown["nowMs"]) == ("virtual", start)
    await bc.send_ok("Later", b"x", properties={"DELAY": "18"})
    status, done = await http_post(port, "/api/clock/advance", {"duration": "2h"})
    assert status == 200, done
    assert (done["delivered"], done["advancedMs"], done["nowMs"]) == (1, 2 * HOUR, start + 2 * HOUR)
    status, done = await http_post(port, "/api/clock/advance", {"ms": 500})
    assert status == 200 and done["nowMs"] == start + 2 * HOUR + 500


@pytest.mark.parametrize(
    ("fields", "why"),
    [({}, "either"), ({"ms": 5, "duration": "5s"}, "either"), ({"ms": -1}, "positive"), ({"ms": 0}, "positive"),
     ({"ms": "5"}, "whole number"), ({"ms": True}, "whole number"), ({"ms": 1.5}, "whole number"),
     ({"duration": "soon"}, "not a duration"), ({"duration": 5}, "string"), ({"duration": "-2h"}, "not a duration"),
     ({"ms": 10**15}, "ten years"), ({"ms": 10**30}, "milliseconds"), ({"duration": "20000d"}, "ten years")],
)  # fmt: skip
async def test_the_http_api_refuses_bad_durations(http_vbroker, clock, fields, why) -> None:  # type: ignore[no-untyped-def]
    before = clock.now_ms()
    status, refused = await http_post(http_vbroker.http_port, "/api/clock/advance", fields)
    assert status == 400 and why in refused["error"]
    assert clock.now_ms() == before


async def test_the_http_api_of_a_system_clock_answers_409(http_broker) -> None:  # type: ignore[no-untyped-def]
    status, shown = await http_get(http_broker.http_port, "/api/clock")
    assert status == 200 and shown["mode"] == "system"
    status, refused = await http_post(http_broker.http_port, "/api/clock/advance", {"duration": "2h"})
    assert status == 409 and "--clock virtual" in refused["error"]


async def test_one_advance_sends_every_check_in_turn_then_discards(cluster, namesrv, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    clock = VirtualClock()
    broker = await cluster.start_broker(
        clock=clock, clean_resource_interval_ms=3_600_000, transaction_check_interval_ms=60_000, transaction_check_max=3
    )
    bc = await open_broker_client(broker)
    await producer_heartbeat(bc)
    await bc.send_ok("Payments", b"never answered", properties={"TRAN_MSG": "true", "PGROUP": "txg"}, sys_flag=0x4)
    done = await ClockControl(broker.ctx).advance(HOUR)  # a producer that never answers
    assert done.checks_sent == 3 and broker.ctx.transactions.discarded == 1
    assert not broker.ctx.transactions.pending
    checks = [await bc.client.receive(timeout=2) for _ in range(3)]
    assert [c.code for c in checks] == [RequestCode.CHECK_TRANSACTION_STATE] * 3


async def test_many_due_times_are_each_a_step_in_order(vbc, control, clock) -> None:  # type: ignore[no-untyped-def]
    start = clock.now_ms()
    for i in range(100, 0, -1):  # sent latest first
        await vbc.send_ok("Many", str(i).encode(), properties={"TIMER_DELAY_MS": str(i * 1000)})
    done = await control.advance(2 * HOUR)
    assert done.delivered == 100 and done.steps >= 101
    msgs: list[Any] = []
    while len(msgs) < 100:
        msgs += await vbc.pull_records("Many", 0, len(msgs))
    assert [int(m.body) for m in msgs] == list(range(1, 101))
    assert [m.store_timestamp - start for m in msgs] == [i * 1000 for i in range(1, 101)]


async def test_advances_at_the_same_time_take_turns(vbc, control, clock) -> None:  # type: ignore[no-untyped-def]
    start = clock.now_ms()
    await vbc.send_ok("Turns", b"x", properties={"TIMER_DELAY_SEC": "90"})
    results = []

    async def move(ms: int) -> None:
        results.append(await control.advance(ms))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(move, 60_000)
    assert clock.now_ms() == start + 180_000
    assert sorted((r.from_ms - start, r.now_ms - start) for r in results) == [
        (0, 60_000), (60_000, 120_000), (120_000, 180_000)
    ]  # fmt: skip
    assert sum(r.delivered for r in results) == 1
    [msg] = await vbc.pull_records("Turns")
    assert msg.store_timestamp == start + 90_000

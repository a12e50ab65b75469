"""Transactional messages over the wire: half messages, END_TRANSACTION, back-checks (fake clock), restarts."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from codec.codes import RequestCode
from codec.command import request
from codec.message_id import decode_offset_msg_id
from codec.properties import decode_properties
from codec.record import decode_record, decode_records
from gateway.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=int(time.time() * 1000))


@pytest.fixture
async def broker_(cluster, namesrv, clock):
    return await cluster.start_broker(clock=clock, transaction_check_interval_ms=5_000, transaction_check_max=3)


@pytest.fixture
async def producer(open_broker_client, broker_):
    return await open_broker_client(broker_)


async def send_half(bc, body: bytes = b"order-1", group: str = "txg", **extra: str):
    props = {"TRAN_MSG": "true", "PGROUP": group, "KEYS": "k1", **extra}
    response = await bc.send_ok("Payments", body, queue_id=1, properties=props, sys_flag=0x4)
    _, _, phys = decode_offset_msg_id(response.ext_fields["msgId"])
    return response, phys


def end_fields(response, phys: int, decision: int, *, group: str = "txg", from_check: bool = False) -> dict[str, str]:
    return {"producerGroup": group, "tranStateTableOffset": response.ext_fields["queueOffset"],
            "commitLogOffset": str(phys), "commitOrRollback": str(decision),
            "fromTransactionCheck": "true" if from_check else "false",
            "msgId": response.ext_fields["transactionId"],
            "transactionId": response.ext_fields["transactionId"]}  # fmt: skip


async def end(bc, response, phys: int, decision: int, **kw):
    return await bc.invoke(RequestCode.END_TRANSACTION, end_fields(response, phys, decision, **kw))


async def producer_heartbeat(bc, group: str = "txg") -> None:
    body = json.dumps({"clientID": "producer-1", "producerDataSet": [{"groupName": group}], "consumerDataSet": []})
    assert (await bc.invoke(RequestCode.HEART_BEAT, body=body.encode())).code == 0


async def next_check(bc, timeout: float = 2.0):
    cmd = await bc.client.receive(timeout=timeout)
    assert (cmd.code, cmd.is_oneway, cmd.is_response) == (RequestCode.CHECK_TRANSACTION_STATE, True, False)
    return cmd


async def test_a_half_message_is_invisible_until_committed_then_delivered_once(producer):
    response, phys = await send_half(producer)
    assert response.ext_fields["queueId"] == "1"
    assert await producer.max_offset("Payments", 1) == 0
    assert (await producer.pull("RMQ_SYS_TRANS_HALF_TOPIC", 0, 0)).code == 17  # not a consumable topic

    assert (await end(producer, response, phys, 8)).code == 0
    [msg] = await producer.pull_records("Payments", 1, 0)
    assert (msg.body, msg.sys_flag & 0xC, msg.prepared_transaction_offset) == (b"order-1", 0x8, phys)
    props = decode_properties(msg.properties)
    assert (
        props["PGROUP"] == "txg" and props["KEYS"] == "k1" and props["UNIQ_KEY"] == response.ext_fields["transactionId"]
    )
    assert not {"TRAN_MSG", "REAL_TOPIC", "REAL_QID"} & props.keys()

    again = await end(producer, response, phys, 8)
    assert again.code == 1 and "already committed" in again.remark
    assert await producer.max_offset("Payments", 1) == 1


async def test_rollback_discards_and_nothing_is_ever_delivered(producer):
    response, phys = await send_half(producer)
    assert (await end(producer, response, phys, 12)).code == 0
    late_commit = await end(producer, response, phys, 8)
    assert late_commit.code == 1 and "already rolled back" in late_commit.remark
    assert await producer.max_offset("Payments", 1) == 0


async def test_unknown_leaves_it_pending_and_gets_no_answer(producer):
    response, phys = await send_half(producer)
    await producer.client.oneway(request(RequestCode.END_TRANSACTION, end_fields(response, phys, 0)))
    cmd = request(RequestCode.END_TRANSACTION, end_fields(response, phys, 0))
    with pytest.raises(TimeoutError):
        await producer.client.invoke(cmd, timeout=0.3)  # Java answers nothing for TRANSACTION_NOT_TYPE either
    assert (await producer.broker.store.half_message(phys)).state == "pending"


async def test_wrong_group_offset_or_message_are_named(producer):
    response, phys = await send_half(producer)
    assert (await end(producer, response, phys, 8, group="other")).remark == "The producer group wrong"
    wrong_offset = end_fields(response, phys, 8) | {"tranStateTableOffset": "99"}
    assert (await producer.invoke(RequestCode.END_TRANSACTION, wrong_offset)).remark == (
        "The transaction state table offset wrong"
    )
    assert (await end(producer, response, phys + 1, 8)).remark == "Find prepared transaction message failed"
    assert await producer.max_offset("Payments", 1) == 0


async def test_a_pending_half_message_is_checked_after_the_timeout_and_committed_by_the_answer(producer, clock):
    await producer_heartbeat(producer)
    response, phys = await send_half(producer)
    clock.advance(5_999)
    with pytest.raises(TimeoutError):
        await producer.client.receive(timeout=0.2)
    clock.advance(1)  # transactionTimeOut 6 s
    check = await next_check(producer)
    assert check.ext_fields["commitLogOffset"] == str(phys)
    assert check.ext_fields["tranStateTableOffset"] == response.ext_fields["queueOffset"]
    assert check.ext_fields["msgId"] == check.ext_fields["transactionId"] == response.ext_fields["transactionId"]
    assert check.ext_fields["offsetMsgId"] == response.ext_fields["msgId"]
    msg, _ = decode_record(check.body)
    props = decode_properties(msg.properties)
    assert (msg.topic, msg.queue_id, msg.body) == ("Payments", 1, b"order-1")
    assert (props["PGROUP"], props["TRANSACTION_CHECK_TIMES"]) == ("txg", "1")

    assert (await end(producer, response, phys, 8, from_check=True)).code == 0
    assert [m.body for m in await producer.pull_records("Payments", 1, 0)] == [b"order-1"]


async def test_checks_repeat_every_interval_then_the_message_is_discarded(producer, clock):
    await producer_heartbeat(producer)
    response, phys = await send_half(producer)
    clock.advance(6_000)
    assert (await next_check(producer)).ext_fields["commitLogOffset"] == str(phys)
    for n in (2, 3):
        clock.advance(5_000)  # transactionCheckInterval
        props = decode_properties(decode_record((await next_check(producer)).body)[0].properties)
        assert props["TRANSACTION_CHECK_TIMES"] == str(n)
    clock.advance(5_000)  # transactionCheckMax 3 reached: discarded, not checked again
    await anyio.sleep(0.2)
    with pytest.raises(TimeoutError):
        await producer.client.receive(timeout=0.2)
    assert (await producer.broker.store.half_message(phys)).state == "discarded"
    assert (await end(producer, response, phys, 8)).code == 1
    assert await producer.max_offset("Payments", 1) == 0


async def test_nothing_is_checked_without_a_producer_and_checks_resume_when_one_connects(producer, clock):
    _, phys = await send_half(producer)
    clock.advance(60_000)
    await anyio.sleep(0.2)
    assert (await producer.broker.store.half_message(phys)).check_times == 0
    await producer_heartbeat(producer)
    check = await next_check(producer)
    assert check.ext_fields["commitLogOffset"] == str(phys)


async def test_check_immunity_time_delays_the_first_check(producer, clock):
    await producer_heartbeat(producer)
    await send_half(producer, CHECK_IMMUNITY_TIME_IN_SECONDS="20")
    clock.advance(19_000)
    with pytest.raises(TimeoutError):
        await producer.client.receive(timeout=0.2)
    clock.advance(1_000)
    await next_check(producer)


async def test_a_commit_outside_the_immunity_time_not_answering_a_check_is_illegal(producer, clock):
    response, phys = await send_half(producer, CHECK_IMMUNITY_TIME_IN_SECONDS="1")
    clock.advance(5_000)
    refused = await end(producer, response, phys, 8)
    assert refused.code == 604
    assert (await end(producer, response, phys, 8, from_check=True)).code == 0


async def test_pending_half_messages_and_their_checks_survive_a_restart(cluster, namesrv, open_broker_client, clock):
    first = await cluster.start_broker(clock=clock, transaction_check_interval_ms=5_000)
    bc = await open_broker_client(first)
    await producer_heartbeat(bc)
    response, phys = await send_half(bc)
    clock.advance(6_000)
    await next_check(bc)
    await cluster.stop(first)

    second = await cluster.start_broker(clock=clock, transaction_check_interval_ms=5_000)
    bc = await open_broker_client(second)
    await producer_heartbeat(bc)
    assert (await second.store.half_message(phys)).check_times == 1
    clock.advance(5_000)
    props = decode_properties(decode_record((await next_check(bc)).body)[0].properties)
    assert props["TRANSACTION_CHECK_TIMES"] == "2"
    assert (await end(bc, response, phys, 8, from_check=True)).code == 0
    assert [m.body for m in decode_records((await bc.pull("Payments", 1, 0)).body)] == [b"order-1"]

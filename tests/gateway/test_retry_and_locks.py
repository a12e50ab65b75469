"""CONSUMER_SEND_MSG_BACK (retry through %RETRY%<group> after a delay, dead letters), client re-sends to retry
topics, LOCK_BATCH_MQ / UNLOCK_BATCH_MQ and consume stats, over the wire with a fake clock."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from codec.codes import RequestCode
from codec.message_id import decode_offset_msg_id
from codec.properties import decode_properties
from gateway.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=int(time.time() * 1000))


@pytest.fixture
async def fbc(cluster, namesrv, open_broker_client, clock):
    broker = await cluster.start_broker(clock=clock)
    return await open_broker_client(broker)


async def send_back(bc, msg_id: str, *, group: str = "cg", delay_level: int = 0, max_times: int | None = None):
    _, _, offset = decode_offset_msg_id(msg_id)
    ext = {"offset": str(offset), "group": group, "delayLevel": str(delay_level), "originMsgId": "ORIG",
           "originTopic": "Orders", "unitMode": "false"}  # fmt: skip
    if max_times is not None:
        ext["maxReconsumeTimes"] = str(max_times)
    return await bc.invoke(RequestCode.CONSUMER_SEND_MSG_BACK, ext)


async def test_a_failed_message_returns_through_the_retry_topic_after_level_3(fbc, clock):
    sent = await fbc.send_ok("Orders", b"pay", properties={"KEYS": "o-1", "UNIQ_KEY": "U1", "TAGS": "t"})
    response = await send_back(fbc, sent.ext_fields["msgId"])
    assert (response.code, response.remark) == (0, None)
    assert await fbc.max_offset("%RETRY%cg", 0) == 0
    clock.advance(9_999)  # level 3 = 10 s
    await anyio.sleep(0.1)
    assert await fbc.max_offset("%RETRY%cg", 0) == 0
    clock.advance(1)
    await anyio.sleep(0.1)
    [msg] = await fbc.pull_records("%RETRY%cg", 0, 0)
    assert (msg.body, msg.reconsume_times) == (b"pay", 1)
    props = decode_properties(msg.properties)
    assert (props["RETRY_TOPIC"], props["UNIQ_KEY"], props["KEYS"], props["TAGS"]) == ("Orders", "U1", "o-1", "t")
    assert props["ORIGIN_MESSAGE_ID"] == "ORIG"
    assert (props["REAL_TOPIC"], props["REAL_QID"]) == ("%RETRY%cg", "0")
    assert "DELAY" not in props


async def test_the_second_failure_waits_level_4_and_keeps_the_original_topic(fbc, clock):
    sent = await fbc.send_ok("Orders", b"pay", properties={"UNIQ_KEY": "U2"})
    await send_back(fbc, sent.ext_fields["msgId"])
    clock.advance(10_000)
    await anyio.sleep(0.1)
    [first_retry] = await fbc.pull_records("%RETRY%cg", 0, 0)
    retry_id = f"7F000001{first_retry.store_port:08X}{first_retry.phys_offset:016X}"
    assert (await send_back(fbc, retry_id)).code == 0
    clock.advance(29_999)  # level 4 = 30 s
    await anyio.sleep(0.1)
    assert await fbc.max_offset("%RETRY%cg", 0) == 1
    clock.advance(1)
    await anyio.sleep(0.1)
    second = (await fbc.pull_records("%RETRY%cg", 0, 1))[0]
    assert second.reconsume_times == 2
    assert decode_properties(second.properties)["RETRY_TOPIC"] == "Orders"


async def test_a_message_that_always_fails_lands_in_the_dead_letter_topic_and_can_be_consumed(fbc, clock):
    sent = await fbc.send_ok("Orders", b"poison", properties={"UNIQ_KEY": "P"})
    msg_id = sent.ext_fields["msgId"]
    for attempt in range(3):  # reconsumeTimes 0, 1 -> retry; 2 -> DLQ with maxReconsumeTimes 2
        assert (await send_back(fbc, msg_id, max_times=2)).code == 0
        if attempt < 2:
            clock.advance(3_600_000)
            await anyio.sleep(0.1)
            retried = await fbc.pull_records("%RETRY%cg", 0, attempt)
            msg_id = f"7F000001{retried[0].store_port:08X}{retried[0].phys_offset:016X}"
    [dead] = await fbc.pull_records("%DLQ%cg", 0, 0)  # at once: no delay for dead letters
    assert (dead.body, dead.reconsume_times) == (b"poison", 3)
    assert decode_properties(dead.properties)["RETRY_TOPIC"] == "Orders"
    topics = json.loads((await fbc.invoke(RequestCode.GET_ALL_TOPIC_CONFIG)).body)["topicConfigTable"]
    assert (topics["%DLQ%cg"]["perm"], topics["%DLQ%cg"]["readQueueNums"]) == (6, 1)


async def test_a_negative_delay_level_goes_straight_to_the_dead_letter_topic(fbc):
    sent = await fbc.send_ok("Orders", b"x")
    assert (await send_back(fbc, sent.ext_fields["msgId"], delay_level=-1)).code == 0
    assert await fbc.max_offset("%DLQ%cg", 0) == 1


async def test_send_back_of_an_unknown_offset_is_a_clear_error(fbc):
    response = await send_back(fbc, "7F00000100002A9F00000000DEADBEEF")
    assert (response.code, response.remark) == (1, f"look message by offset failed, {0xDEADBEEF}")


async def test_a_client_resend_at_the_limit_goes_to_the_dead_letter_topic(fbc):
    ext_props = {"DELAY": "3", "RETRY_TOPIC": "Orders"}
    response = await fbc.invoke(
        RequestCode.SEND_MESSAGE,
        {"producerGroup": "CLIENT_INNER_PRODUCER", "topic": "%RETRY%cg", "defaultTopic": "TBW102",
         "defaultTopicQueueNums": "4", "queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0",
         "properties": "".join(f"{k}\x01{v}\x02" for k, v in ext_props.items()), "reconsumeTimes": "2",
         "maxReconsumeTimes": "2"},
        b"resent",
    )  # fmt: skip
    assert response.code == 0, response.remark
    [dead] = await fbc.pull_records("%DLQ%cg", 0, 0)
    assert dead.body == b"resent" and "DELAY" not in decode_properties(dead.properties)


def lock_body(client: str, queues: list[int], group: str = "og") -> bytes:
    mqs = [{"brokerName": "broker-a", "queueId": q, "topic": "Ordered"} for q in queues]
    return json.dumps({"clientId": client, "consumerGroup": group, "mqSet": mqs, "onlyThisBroker": False}).encode()


async def locked(bc, client: str, queues: list[int]) -> list[int]:
    response = await bc.invoke(RequestCode.LOCK_BATCH_MQ, body=lock_body(client, queues))
    assert response.code == 0
    return sorted(mq["queueId"] for mq in json.loads(response.body)["lockOKMQSet"])


async def test_queue_locks_over_the_wire(fbc, clock):
    assert await locked(fbc, "c1", [0, 1]) == [0, 1]
    assert await locked(fbc, "c2", [0, 1, 2]) == [2]
    assert (await fbc.invoke(RequestCode.UNLOCK_BATCH_MQ, body=lock_body("c1", [1]))).code == 0
    assert await locked(fbc, "c2", [1]) == [1]
    clock.advance(60_001)  # c1's lock on queue 0 expires without renewal
    assert await locked(fbc, "c2", [0]) == [0]


async def test_a_bad_lock_body_is_a_clear_error(fbc):
    response = await fbc.invoke(RequestCode.LOCK_BATCH_MQ, body=b'{"mqSet":[]}')
    assert response.code == 1 and "consumerGroup" in response.remark


async def test_consume_stats_show_lag_per_queue(fbc):
    for i in range(3):
        await fbc.send_ok("Lagging", f"m{i}".encode(), queue_id=0)
    await fbc.heartbeat("c1", "lag-group", {"Lagging": "*"})
    commit = {"consumerGroup": "lag-group", "topic": "Lagging", "queueId": "0", "commitOffset": "1"}
    assert (await fbc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, commit)).code == 0
    response = await fbc.invoke(RequestCode.GET_CONSUME_STATS, {"consumerGroup": "lag-group"})
    assert response.code == 0
    body = response.body.decode()
    q0 = '{"brokerName":"broker-a","queueId":0,"topic":"Lagging"}:{"brokerOffset":3,"consumerOffset":1,'
    assert q0 in body
    assert '"queueId":3,"topic":"Lagging"}:{"brokerOffset":0,"consumerOffset":0,"lastTimestamp":0' in body

"""PULL_MESSAGE (11): the status table of flows.md section 3.1, filtering, limits and long polling (section 3.2)."""

from __future__ import annotations

import time

import anyio
import pytest

from codec.codes import PullSysFlag, RequestCode, ResponseCode
from codec.command import request
from codec.frame import encode_frame
from codec.properties import encode_properties
from codec.record import decode_records

PULL_EXT_KEYS = {"suggestWhichBrokerId", "nextBeginOffset", "minOffset", "maxOffset"}


def assert_pull(response, code: int, status: str, next_offset: int, min_offset: int, max_offset: int) -> None:
    assert (response.code, response.remark) == (code, status)
    assert response.ext_fields == {
        "suggestWhichBrokerId": "0",
        "nextBeginOffset": str(next_offset),
        "minOffset": str(min_offset),
        "maxOffset": str(max_offset),
    }
    if code != 0:
        assert response.body == b""


@pytest.fixture
async def three(bc):
    """TopicP queue 0 holds offsets 0..2; queues 1..3 are empty."""
    for i in range(3):
        await bc.send_ok("TopicP", f"m{i}".encode(), queue_id=0)
    return bc


@pytest.mark.parametrize(
    ("queue_id", "offset", "code", "status", "next_offset", "max_offset"),
    [
        (1, 0, 19, "NO_MESSAGE_IN_QUEUE", 0, 0),  # empty queue, o == 0
        (1, 5, 21, "NO_MESSAGE_IN_QUEUE", 0, 0),  # empty queue, o != 0
        (0, -1, 21, "OFFSET_TOO_SMALL", 0, 3),  # o < min
        (0, 3, 19, "OFFSET_OVERFLOW_ONE", 3, 3),  # o == max
        (0, 10, 21, "OFFSET_OVERFLOW_BADLY", 3, 3),  # o > max
    ],
)
async def test_status_table(three, queue_id, offset, code, status, next_offset, max_offset):
    response = await three.pull("TopicP", queue_id, offset)
    assert_pull(response, code, status, next_offset, 0, max_offset)


async def test_found(three):
    response = await three.pull("TopicP", 0, 1)
    assert_pull(response, 0, "FOUND", 3, 0, 3)
    records = decode_records(response.body)
    assert [(m.queue_offset, m.body) for m in records] == [(1, b"m1"), (2, b"m2")]


async def test_no_matched_message(three):
    response = await three.pull("TopicP", 0, 0, subscription="NoSuchTag")
    assert_pull(response, 20, "NO_MATCHED_MESSAGE", 3, 0, 3)


async def test_unknown_topic_and_bad_queue(bc):
    response = await bc.pull("NeverSeen", 0, 0)
    assert (response.code, response.remark) == (17, "topic[NeverSeen] not exist, apply first please!")
    await bc.send_ok("TopicQ")
    response = await bc.pull("TopicQ", 4, 0)
    assert response.code == 29
    assert "queueId[4] is illegal" in response.remark


async def test_max_msg_nums_limits_the_batch(bc):
    for i in range(5):
        await bc.send_ok("Limit", f"{i}".encode())
    response = await bc.pull("Limit", 0, 1, max_nums=2)
    assert_pull(response, 0, "FOUND", 3, 0, 5)
    assert [m.body for m in decode_records(response.body)] == [b"1", b"2"]


@pytest.fixture
async def tagged(bc):
    """Queue 0 of TopicT: tags a, b, c, none, a."""
    for i, tag in enumerate(["a", "b", "c", None, "a"]):
        props = {"TAGS": tag} if tag else {}
        await bc.send_ok("TopicT", f"{i}".encode(), properties=encode_properties(props))
    return bc


async def test_tag_filter_from_the_request_expression(tagged):
    response = await tagged.pull("TopicT", 0, 0, subscription="a || b")
    assert_pull(response, 0, "FOUND", 5, 0, 5)
    assert [m.body for m in decode_records(response.body)] == [b"0", b"1", b"4"]
    # The expression only counts when the SUBSCRIPTION bit is set and "*" means everything.
    everything = await tagged.pull("TopicT", 0, 0, subscription="*")
    assert len(decode_records(everything.body)) == 5


async def test_tag_filter_from_the_heartbeat_subscription(tagged, open_broker_client):
    assert (await tagged.heartbeat("10.0.0.1@1", "cg-sub", {"TopicT": "c"})).code == 0
    response = await tagged.pull("TopicT", 0, 0, group="cg-sub")
    assert_pull(response, 0, "FOUND", 5, 0, 5)
    assert [m.body for m in decode_records(response.body)] == [b"2"]
    # A request expression overrides the heartbeat's.
    assert len(decode_records((await tagged.pull("TopicT", 0, 0, group="cg-sub", subscription="a")).body)) == 2
    # Another connection of the same group gets the same (group-wide) subscription.
    other = await open_broker_client(tagged.broker)
    assert [m.body for m in decode_records((await other.pull("TopicT", 0, 0, group="cg-sub")).body)] == [b"2"]


async def test_commit_offset_flag_stores_the_offset(three):
    committed = three.pull("TopicP", 0, 2, group="cg-commit", sys_flag=PullSysFlag.COMMIT_OFFSET, commit_offset=2)
    assert (await committed).code == 0
    query = await three.invoke(
        RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": "cg-commit", "topic": "TopicP", "queueId": "0"}
    )
    assert (query.code, query.ext_fields) == (0, {"offset": "2"})
    # Without the flag, commitOffset is ignored.
    await three.pull("TopicP", 0, 0, group="cg-commit", commit_offset=1)
    query = await three.invoke(
        RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": "cg-commit", "topic": "TopicP", "queueId": "0"}
    )
    assert query.ext_fields == {"offset": "2"}


# --- long polling ---------------------------------------------------------------------------------------------


async def test_without_suspend_an_empty_pull_answers_at_once(three):
    started = time.monotonic()
    response = await three.pull("TopicP", 0, 3, suspend_ms=5000)
    assert time.monotonic() - started < 0.5
    assert_pull(response, 19, "OFFSET_OVERFLOW_ONE", 3, 0, 3)


async def test_suspended_pull_times_out_with_not_found(three):
    started = time.monotonic()
    response = await three.pull("TopicP", 0, 3, sys_flag=PullSysFlag.SUSPEND, suspend_ms=300)
    elapsed = time.monotonic() - started
    assert 0.28 <= elapsed < 1.5
    assert_pull(response, 19, "OFFSET_OVERFLOW_ONE", 3, 0, 3)


@pytest.mark.parametrize(("queue_id", "offset"), [(1, 0), (0, 3)], ids=["empty-queue", "caught-up"])
async def test_suspended_pull_is_answered_when_a_message_arrives(three, open_broker_client, queue_id, offset):
    producer = await open_broker_client(three.broker)
    result = {}

    async def held_pull() -> None:
        result["response"] = await three.pull("TopicP", queue_id, offset, sys_flag=PullSysFlag.SUSPEND,
                                              suspend_ms=10_000, timeout=5)  # fmt: skip
        result["at"] = time.monotonic()

    async with anyio.create_task_group() as tg:
        tg.start_soon(held_pull)
        await anyio.sleep(0.2)
        assert "response" not in result  # held, not answered
        sent_at = time.monotonic()
        await producer.send_ok("TopicP", b"late", queue_id=queue_id)

    assert result["at"] - sent_at < 0.5
    response = result["response"]
    assert_pull(response, 0, "FOUND", offset + 1, 0, offset + 1)
    [m] = decode_records(response.body)
    assert (m.body, m.queue_offset) == (b"late", offset)


async def test_a_message_to_another_queue_does_not_release_a_held_pull(three, open_broker_client):
    producer = await open_broker_client(three.broker)
    result = {}

    async def held_pull() -> None:
        result["response"] = await three.pull("TopicP", 2, 0, sys_flag=PullSysFlag.SUSPEND, suspend_ms=400)

    async with anyio.create_task_group() as tg:
        tg.start_soon(held_pull)
        await anyio.sleep(0.1)
        await producer.send_ok("TopicP", b"elsewhere", queue_id=3)
        await anyio.sleep(0.1)
        assert "response" not in result
    assert_pull(result["response"], 19, "NO_MESSAGE_IN_QUEUE", 0, 0, 0)


async def test_a_held_pull_does_not_block_its_connection(three):
    """Held pulls complete in their own task; later requests on the same connection are answered meanwhile."""
    client = three.client
    held = request(RequestCode.PULL_MESSAGE, {
        "consumerGroup": "cg", "topic": "TopicP", "queueId": "1", "queueOffset": "0", "maxMsgNums": "32",
        "sysFlag": str(int(PullSysFlag.SUSPEND)), "commitOffset": "0", "suspendTimeoutMillis": "400",
        "subVersion": "0",
    })  # fmt: skip
    held.opaque = 9001
    await client.stream.send(encode_frame(held))
    started = time.monotonic()
    assert await three.max_offset("TopicP", 0) == 3
    assert time.monotonic() - started < 0.3
    late = await client.receive(timeout=2)
    assert (late.opaque, late.code) == (9001, 19)


async def test_pull_from_a_write_only_topic(bc):
    create = {"topic": "WriteOnly", "readQueueNums": "2", "writeQueueNums": "2", "perm": "2"}
    assert (await bc.invoke(RequestCode.UPDATE_AND_CREATE_TOPIC, create)).code == 0
    await bc.send_ok("WriteOnly", b"x")
    response = await bc.pull("WriteOnly", 0, 0)
    assert (response.code, response.remark, response.body) == (16, "the topic[WriteOnly] pulling message is forbidden",
                                                                b"")  # fmt: skip


async def test_a_held_pull_is_discarded_when_its_connection_closes(three, cluster, wire):
    waits = three.broker.ctx.waits
    consumer = await cluster.connect(three.broker)
    held = request(RequestCode.PULL_MESSAGE, {
        "consumerGroup": "cg", "topic": "TopicP", "queueId": "1", "queueOffset": "0", "maxMsgNums": "32",
        "sysFlag": str(int(PullSysFlag.SUSPEND)), "commitOffset": "0", "suspendTimeoutMillis": "10000",
        "subVersion": "0",
    })  # fmt: skip
    await consumer.stream.send(encode_frame(held))

    async def parked() -> bool:
        return len(waits) == 1

    await wire.wait_until(parked)
    await consumer.aclose()

    async def forgotten() -> bool:
        return len(waits) == 0

    await wire.wait_until(forgotten, timeout=1)


async def test_a_held_pull_skips_messages_its_filter_rejects_and_keeps_holding(three, open_broker_client):
    producer = await open_broker_client(three.broker)
    result = {}

    async def held_pull() -> None:
        result["response"] = await three.pull(
            "TopicP", 1, 0, sys_flag=PullSysFlag.SUSPEND, subscription="wanted", suspend_ms=5_000, timeout=6
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(held_pull)
        await anyio.sleep(0.1)
        await producer.send_ok("TopicP", b"other", queue_id=1, properties="TAGS\x01other\x02")
        await anyio.sleep(0.2)
        assert "response" not in result  # a rejected message does not release the hold
        await producer.send_ok("TopicP", b"match", queue_id=1, properties="TAGS\x01wanted\x02")
    response = result["response"]
    assert_pull(response, 0, "FOUND", 2, 0, 2)
    assert [m.body for m in decode_records(response.body)] == [b"match"]


async def test_graceful_shutdown_answers_held_pulls_at_once(three):
    result = {}

    async def held_pull() -> None:
        result["response"] = await three.pull(
            "TopicP", 1, 0, sys_flag=PullSysFlag.SUSPEND, suspend_ms=20_000, timeout=5
        )
        result["at"] = time.monotonic()

    async with anyio.create_task_group() as tg:
        tg.start_soon(held_pull)
        await anyio.sleep(0.1)
        started = time.monotonic()
        await three.broker.drain(timeout=3)
    assert result["at"] - started < 1.0
    # An error, not PULL_NOT_FOUND: the client waits before pulling again instead of sending a pull that may be
    # in flight when the connection closes (the Java client then waits out its 30 s pull timeout).
    assert result["response"].code == ResponseCode.SYSTEM_BUSY
    assert result["response"].remark == "the broker is shutting down; pull again later"


async def test_while_shutting_down_long_polls_are_refused_and_plain_pulls_answered(three):
    await three.broker.drain(timeout=3)
    refused = await three.pull("TopicP", 1, 0, sys_flag=PullSysFlag.SUSPEND, suspend_ms=20_000, timeout=5)
    assert (refused.code, refused.remark) == (ResponseCode.SYSTEM_BUSY, "the broker is shutting down; pull again later")
    assert (await three.pull("TopicP", 1, 0, sys_flag=0, timeout=5)).code == ResponseCode.PULL_NOT_FOUND

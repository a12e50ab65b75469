"""UPDATE_AND_CREATE_TOPIC (17) and DELETE_TOPIC_IN_BROKER (215): system topics are off limits
(AdminBrokerProcessor with validateSystemTopicWhenUpdateTopic on, TopicValidator.isSystemTopic)."""

from __future__ import annotations

import json
import time

import anyio
import pytest

from codec.codes import RequestCode
from gateway.clock import FakeClock
from gateway.topics import is_system_topic

# Apache's fixed set, the rmq_sys_ prefix, and what the default broker (DefaultCluster / broker-a) registers.
SYSTEM_TOPICS = [
    "TBW102",
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
    "BenchmarkTest",
    "RMQ_SYS_TRACE_TOPIC",
    "CHECKPOINT_TOPIC",
    "rmq_sys_wheel_timer",
    "rmq_sys_REVIVE_LOG_DefaultCluster",
    "rmq_sys_anything",
    "DefaultCluster",
    "broker-a",
    "DefaultCluster_REPLY_TOPIC",
]


def conflict(topic: str) -> tuple[int, str]:
    return 29, f"The topic[{topic}] is conflict with system topic."  # INVALID_PARAMETER


def create_fields(topic: str, queues: int = 4, perm: int = 6) -> dict[str, str]:
    """A CreateTopicRequestHeader as mqadmin updateTopic sends it."""
    return {"topic": topic, "defaultTopic": "TBW102", "readQueueNums": str(queues), "writeQueueNums": str(queues),
            "perm": str(perm), "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false"}  # fmt: skip


async def topic_table(bc) -> dict[str, dict]:
    return json.loads((await bc.invoke(RequestCode.GET_ALL_TOPIC_CONFIG)).body)["topicConfigTable"]


async def delete(bc, topic: str):
    return await bc.invoke(RequestCode.DELETE_TOPIC_IN_BROKER, {"topic": topic})


async def create(bc, topic: str, **kw):
    return await bc.invoke(RequestCode.UPDATE_AND_CREATE_TOPIC, create_fields(topic, **kw))


@pytest.mark.parametrize("topic", SYSTEM_TOPICS)
async def test_a_system_topic_can_be_neither_deleted_nor_created_nor_overwritten(bc, topic):
    before = await topic_table(bc)
    deleted = await delete(bc, topic)
    assert (deleted.code, deleted.remark) == conflict(topic)
    created = await create(bc, topic, queues=2, perm=6)
    assert (created.code, created.remark) == conflict(topic)
    assert await topic_table(bc) == before  # nothing deleted, created or changed (TBW102 keeps perm 7)


async def test_auto_creation_still_works_after_a_refused_delete_and_overwrite_of_tbw102(bc):
    assert (await delete(bc, "TBW102")).code == 29
    assert (await create(bc, "TBW102", queues=8, perm=6)).code == 29  # would drop PERM_INHERIT
    await bc.send_ok("AutoCreatedAfterwards", b"x")
    table = await topic_table(bc)
    assert table["TBW102"]["perm"] == 7
    assert table["AutoCreatedAfterwards"]["perm"] == 6


async def test_a_pending_delayed_message_survives_a_refused_delete_of_the_schedule_topic(
    cluster, namesrv, open_broker_client
):
    clock = FakeClock(start_ms=int(time.time() * 1000))
    bc = await open_broker_client(await cluster.start_broker(clock=clock))
    await bc.send_ok("Later", b"in five seconds", queue_id=1, properties={"DELAY": "2"})  # level 2 = 5 s
    refused = await delete(bc, "SCHEDULE_TOPIC_XXXX")
    assert (refused.code, refused.remark) == conflict("SCHEDULE_TOPIC_XXXX")
    assert await bc.max_offset("Later", 1) == 0
    clock.advance(5_000)
    with anyio.fail_after(3):
        while await bc.max_offset("Later", 1) == 0:  # noqa: ASYNC110 - the scheduler task hands it over
            await anyio.sleep(0.02)
    [msg] = await bc.pull_records("Later", 1, 0)
    assert msg.body == b"in five seconds"


async def test_normal_retry_and_dlq_topics_can_still_be_created_and_deleted(bc):
    assert (await create(bc, "Plain", queues=2)).code == 0
    await bc.send_ok("Plain", b"x")
    await bc.send_ok("%RETRY%cg", b"retried")  # created on demand, as a client's own re-send does
    assert (await create(bc, "%DLQ%cg", queues=1)).code == 0  # Apache validates only the name of these
    assert {"Plain", "%RETRY%cg", "%DLQ%cg"} <= set(await topic_table(bc))

    for topic in ("Plain", "%RETRY%cg", "%DLQ%cg"):
        response = await delete(bc, topic)
        assert (response.code, response.remark) == (0, None), topic
    assert not {"Plain", "%RETRY%cg", "%DLQ%cg"} & set(await topic_table(bc))
    assert await bc.max_offset("Plain", 0) == 0  # its messages went with it


async def test_blank_and_badly_named_topics_are_refused_with_apaches_remarks(bc):
    blank = await delete(bc, " ")
    assert (blank.code, blank.remark) == (29, "The specified topic is blank.")
    bad = await create(bc, "bad topic!")
    assert (bad.code, bad.remark) == (
        29, "The specified topic: bad topic!, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
    )  # fmt: skip
    long_name = "T" * 128
    too_long = await create(bc, long_name)
    assert (too_long.code, too_long.remark) == (
        29, f"The specified topic: {long_name}, is longer than topic max length: 127"
    )  # fmt: skip


async def test_the_check_follows_the_configured_cluster_and_broker_name(cluster, namesrv, open_broker_client):
    bc = await open_broker_client(await cluster.start_broker(cluster="C1", broker_name="b1"))
    for topic in ("C1", "b1", "C1_REPLY_TOPIC"):
        response = await delete(bc, topic)
        assert (response.code, response.remark) == conflict(topic)
    # Another cluster's name is an ordinary topic here (Apache registers only its own names).
    assert (await create(bc, "DefaultCluster")).code == 0


async def test_validate_system_topics_off_lets_them_through(bc):
    """validateSystemTopicWhenUpdateTopic=false: Apache then creates and deletes system topics like any other."""
    bc.broker.topics.validate_system_topics = False
    assert (await create(bc, "SELF_TEST_TOPIC", queues=1)).code == 0
    assert (await delete(bc, "SELF_TEST_TOPIC")).code == 0


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("TBW102", True), ("rmq_sys_x", True), ("RMQ_SYS_x", False), ("C", True), ("B", True), ("C_REPLY_TOPIC", True),
     ("DefaultCluster", False), ("%RETRY%g", False), ("%DLQ%g", False), ("TopicA", False)],
)  # fmt: skip
def test_is_system_topic(topic, expected):
    assert is_system_topic(topic, cluster="C", broker_name="B") is expected

"""Topic attributes: the ``attributes`` header of UPDATE_AND_CREATE_TOPIC, kept with the topic, and the message types
a 5.x client may send to it."""

from __future__ import annotations

import re

import pytest

from codec import jsonbody
from codec.codes import RequestCode
from gateway.topic_attributes import InvalidAttributes, accepted_types, alter, message_type_of, type_refused


def test_alter_sets_and_removes_known_attributes() -> None:
    assert alter({}, "+message.type=FIFO") == {"message.type": "FIFO"}
    assert alter({"message.type": "FIFO"}, "+queue.type=SimpleCQ,-message.type") == {"queue.type": "SimpleCQ"}
    assert alter({"message.type": "FIFO"}, None) == {"message.type": "FIFO"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("+message.type=ODD", "cannot be 'ODD'"),
        ("+colour=red", "unsupported topic attribute 'colour'"),
        ("message.type=FIFO", "neither +key=value nor -key"),
        ("+message.type", "neither +key=value nor -key"),
        ("-colour", "unsupported topic attribute 'colour'"),
    ],
)
def test_alter_names_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(InvalidAttributes, match=re.escape(problem)):
        alter({}, text)


def test_message_types_as_apache_reads_them() -> None:
    assert message_type_of({}) == "NORMAL"
    assert message_type_of({"__SHARDINGKEY": "g"}) == "FIFO"
    assert message_type_of({"TIMER_DELIVER_MS": "1"}) == "DELAY"
    assert message_type_of({"TRAN_MSG": "true", "__SHARDINGKEY": "g"}) == "TRANSACTION"
    assert accepted_types({}) == ("NORMAL", "FIFO", "DELAY", "TRANSACTION"), "no attribute: every type"
    assert accepted_types({"message.type": "DELAY"}) == ("DELAY",)
    assert type_refused({"message.type": "FIFO"}, "FIFO") is None
    assert type_refused({"message.type": "MIXED"}, "DELAY") is None
    assert "expected type is FIFO, but actual type is NORMAL" in (
        type_refused({"message.type": "FIFO"}, "NORMAL") or ""
    )


async def test_create_topic_keeps_its_attributes_across_a_restart(cluster, namesrv, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    broker = await cluster.start_broker()
    bc = await open_broker_client(broker)
    ext = {
        "topic": "TypedT", "defaultTopic": "TBW102", "readQueueNums": "4", "writeQueueNums": "4", "perm": "6",
        "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false", "attributes": "+message.type=FIFO",
    }  # fmt: skip
    assert (await bc.invoke(RequestCode.UPDATE_AND_CREATE_TOPIC, ext)).code == 0
    bad = await bc.invoke(RequestCode.UPDATE_AND_CREATE_TOPIC, {**ext, "attributes": "+message.type=ODD"})
    assert bad.code != 0 and "ODD" in (bad.remark or "")
    await cluster.stop(broker)
    broker = await cluster.start_broker()
    assert broker.ctx.topics.get("TypedT").attributes == {"message.type": "FIFO"}
    bc = await open_broker_client(broker)
    listed = jsonbody.loads((await bc.invoke(RequestCode.GET_ALL_TOPIC_CONFIG)).body)
    assert listed["topicConfigTable"]["TypedT"]["attributes"] == {"message.type": "FIFO"}

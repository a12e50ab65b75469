"""SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320) over the wire (flows.md section 1.1)."""

from __future__ import annotations

import json
import zlib

import pytest

from codec import jsonbody
from codec.batch import BatchItem, encode_batch
from codec.codes import MessageSysFlag, RequestCode
from codec.command import RemotingCommand
from codec.frame import encode_frame
from codec.message_id import decode_offset_msg_id
from codec.properties import decode_properties, encode_properties

SEND_EXT_KEYS = {"msgId", "queueId", "queueOffset", "transactionId", "MSG_REGION", "TRACE_ON"}


def assert_offset_id(msg_id: str, port: int) -> int:
    """An offset msgId is 32 upper-case hex chars naming the broker's address; return its physical offset."""
    assert len(msg_id) == 32
    assert msg_id == msg_id.upper()
    host, id_port, phys = decode_offset_msg_id(msg_id)
    assert (host, id_port) == ("127.0.0.1", port)
    return phys


@pytest.mark.parametrize("code", [RequestCode.SEND_MESSAGE, RequestCode.SEND_MESSAGE_V2])
async def test_send_response_fields_and_stored_record(bc, code):
    port = bc.broker.config.port
    props = {"TAGS": "TagA", "KEYS": "k1 k2", "color": "red"}
    first = await bc.send_ok("TopicA", b"first", code=code, queue_id=1, properties=props)
    second = await bc.send_ok("TopicA", b"second", code=code, queue_id=1, properties=props)

    for r in (first, second):
        assert r.remark is None
        assert r.body == b""
        assert set(r.ext_fields) == SEND_EXT_KEYS
        assert r.ext_fields["MSG_REGION"] == "DefaultRegion"
        assert r.ext_fields["TRACE_ON"] == "true"
        assert r.ext_fields["queueId"] == "1"
    assert first.ext_fields["queueOffset"] == "0"
    assert second.ext_fields["queueOffset"] == "1"

    records = await bc.pull_records("TopicA", 1, 0)
    assert [m.body for m in records] == [b"first", b"second"]
    # The first message of a fresh store sits at commit-log offset 0, the next right after its record.
    phys = [assert_offset_id(r.ext_fields["msgId"], port) for r in (first, second)]
    first_size = 91 + len(b"first") + len("TopicA") + len(records[0].properties.encode())  # messages.md section 4
    assert phys == [0, first_size]
    assert [m.phys_offset for m in records] == phys
    for response, m in zip((first, second), records, strict=True):
        stored = decode_properties(m.properties)
        # No UNIQ_KEY sent: the broker generated one and reports it as transactionId.
        assert response.ext_fields["transactionId"] == stored["UNIQ_KEY"]
        assert len(stored["UNIQ_KEY"]) == 32
        assert stored["CLUSTER"] == "DefaultCluster"
        # What the producer sent is kept byte for byte; the broker only appends.
        assert m.properties.startswith(encode_properties(props))
        assert (m.topic, m.queue_id, m.store_host, m.store_port) == ("TopicA", 1, "127.0.0.1", port)
        assert m.born_host == "127.0.0.1"


async def test_properties_flag_and_compressed_sys_flag_round_trip_byte_for_byte(bc):
    body = zlib.compress(b"x" * 10_000)
    props = encode_properties({
        "TAGS": "TagA", "KEYS": "order-1 order-2", "UNIQ_KEY": "0A0000017C3A18B4AAC2", "CLUSTER": "DefaultCluster",
        "WAIT": "true", "note": "caf\u00e9 \u2603",
    })  # fmt: skip
    response = await bc.send_ok(
        "TopicZ", body, queue_id=2, properties=props, flag=0x7FFF_0001, sys_flag=MessageSysFlag.COMPRESSED
    )
    assert response.ext_fields["transactionId"] == "0A0000017C3A18B4AAC2"

    [m] = await bc.pull_records("TopicZ", 2, 0)
    assert m.properties == props  # UNIQ_KEY and CLUSTER present already: nothing appended
    assert m.body == body
    assert m.flag == 0x7FFF_0001
    assert m.sys_flag == MessageSysFlag.COMPRESSED
    assert m.body_crc == zlib.crc32(body) & 0x7FFFFFFF
    assert m.queue_offset == 0
    assert m.store_timestamp > 0


async def test_v2_with_cpp_style_numeric_ext_fields(bc, wire):
    """The C++ client writes d, e, f, h, l as JSON numbers and language CPP, version 63."""
    props = encode_properties({"TAGS": "T1", "UNIQ_KEY": "CPPUNIQ0001"})
    ext = {"a": "cpp-pg", "b": "TopicCpp", "c": "TBW102", "d": 4, "e": 3, "f": 0, "g": "1700000000000", "h": 5,
           "i": props, "j": 0, "k": False, "l": 16, "m": False,
           "Signature": "", "AccessKey": "", "OnsChannel": "ALIYUN"}  # fmt: skip
    header = wire.json_header(RequestCode.SEND_MESSAGE_V2, ext, opaque=4242, language="CPP", version=63)
    await bc.client.stream.send(wire.raw_frame(header, b"from c++"))
    response = await bc.client.receive()

    assert (response.code, response.opaque, response.is_response) == (0, 4242, True)
    assert response.ext_fields["queueId"] == "3"
    assert response.ext_fields["queueOffset"] == "0"
    assert response.ext_fields["transactionId"] == "CPPUNIQ0001"
    [m] = await bc.pull_records("TopicCpp", 3, 0)
    assert (m.body, m.flag, m.born_timestamp) == (b"from c++", 5, 1700000000000)
    assert m.properties.startswith(props)


@pytest.mark.parametrize(
    ("code", "batch_flag"), [(RequestCode.SEND_BATCH_MESSAGE, False), (RequestCode.SEND_MESSAGE_V2, True)]
)
async def test_batch_send(bc, code, batch_flag):
    port = bc.broker.config.port
    await bc.send_ok("TopicB", b"before", queue_id=0)
    items = [
        BatchItem(b"one", encode_properties({"TAGS": "a", "UNIQ_KEY": "U1"}), flag=1),
        BatchItem(b"two", encode_properties({"KEYS": "kb"}), flag=2),
        BatchItem(b"three", "", flag=3),
    ]
    response = await bc.send("TopicB", encode_batch(items), code=code, batch=batch_flag, queue_id=0, sys_flag=0)

    assert response.code == 0, response.remark
    assert response.ext_fields["queueId"] == "0"
    assert response.ext_fields["queueOffset"] == "1"  # the first item's offset
    assert response.ext_fields["MSG_REGION"] == "DefaultRegion"
    ids = response.ext_fields["msgId"].split(",")
    assert len(ids) == 3
    phys = [assert_offset_id(i, port) for i in ids]
    records = await bc.pull_records("TopicB", 0, 1)
    assert [m.body for m in records] == [b"one", b"two", b"three"]
    assert [m.flag for m in records] == [1, 2, 3]
    assert [m.properties for m in records] == [i.properties for i in items]  # items are stored as sent
    assert [m.queue_offset for m in records] == [1, 2, 3]
    assert [m.phys_offset for m in records] == phys
    assert phys == sorted(set(phys))


async def test_auto_created_topic_gets_four_queues_and_is_routed(bc, ns_client, call, wire):
    response = await bc.send_ok("AutoTopic", queue_id=3)
    assert response.ext_fields["queueId"] == "3"
    out_of_range = await bc.send("AutoTopic", queue_id=4)
    assert out_of_range.code == 29

    async def routed() -> bool:
        return (await call(ns_client, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "AutoTopic"})).code == 0

    await wire.wait_until(routed)
    route = jsonbody.loads((await call(ns_client, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "AutoTopic"})).body)
    assert route["queueDatas"] == [{"brokerName": "broker-a", "perm": 6, "readQueueNums": 4, "topicSynFlag": 0,
                                    "topicSysFlag": 0, "writeQueueNums": 4}]  # fmt: skip


@pytest.mark.parametrize(("requested", "expected"), [(2, 2), (16, 8)])
async def test_auto_create_honours_default_topic_queue_nums_capped_by_tbw102(bc, requested, expected):
    """min(defaultTopicQueueNums, TBW102.writeQueueNums); TBW102 has 8 queues."""
    await bc.send_ok("Sized", queue_nums=requested, queue_id=0)
    config = json.loads((await bc.invoke(RequestCode.GET_ALL_TOPIC_CONFIG)).body)["topicConfigTable"]["Sized"]
    assert (config["readQueueNums"], config["writeQueueNums"], config["perm"]) == (expected, expected, 6)
    assert (await bc.send("Sized", queue_id=expected)).code == 29


async def test_broker_default_topic_queue_nums_applies_when_the_request_has_none(cluster, namesrv, open_broker_client):
    broker = await cluster.start_broker(default_topic_queue_nums=3)
    bc = await open_broker_client(broker)
    await bc.send_ok("Dflt", queue_nums=0, queue_id=2)
    assert (await bc.send("Dflt", queue_nums=0, queue_id=3)).code == 29


async def test_negative_queue_id_lets_the_broker_pick(bc):
    picked = {int((await bc.send_ok("Pick", queue_id=-1)).ext_fields["queueId"]) for _ in range(12)}
    assert picked <= {0, 1, 2, 3}


# --- errors --------------------------------------------------------------------------------------------------


async def assert_refused(bc, response, code: int, remark_part: str, topic: str) -> None:
    assert response.code == code, (response.code, response.remark)
    assert remark_part in response.remark
    assert response.ext_fields.get("MSG_REGION") == "DefaultRegion"
    assert response.ext_fields.get("TRACE_ON") == "true"
    assert "msgId" not in response.ext_fields
    assert await bc.max_offset(topic, 0) == 0


async def test_body_too_large(cluster, namesrv, open_broker_client):
    bc = await open_broker_client(await cluster.start_broker(max_message_size=1024))
    await bc.send_ok("Big", b"x" * 1024)
    response = await bc.send("Big", b"x" * 1025, queue_id=1)
    assert response.code == 13
    assert response.remark == "the message body size 1025 exceeds the maximum 1024"
    assert await bc.max_offset("Big", 1) == 0


async def test_empty_body(bc):
    await assert_refused(bc, await bc.send("Empty", b""), 13, "the message body is empty", "Empty")


async def test_invalid_topic_characters(bc):
    response = await bc.send("bad topic!", b"x")
    await assert_refused(bc, response, 29, "contains illegal characters", "bad topic!")
    assert response.remark == (
        "the specified topic[bad topic!] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
    )


@pytest.mark.parametrize(
    "topic",
    ["SCHEDULE_TOPIC_XXXX", "RMQ_SYS_TRANS_HALF_TOPIC", "RMQ_SYS_TRANS_OP_HALF_TOPIC", "TRANS_CHECK_MAX_TIME_TOPIC",
     "SELF_TEST_TOPIC", "OFFSET_MOVED_EVENT", "rmq_sys_wheel_timer"],
)  # fmt: skip
async def test_system_topic(bc, topic):
    """TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET, plus the timer topic that holds pocketmq's pending timers."""
    response = await bc.send(topic, b"x")
    await assert_refused(bc, response, 16, f"Sending message to topic[{topic}] is forbidden.", topic)


async def test_queue_id_out_of_range(bc):
    await bc.send_ok("Ranged", queue_id=0)
    response = await bc.send("Ranged", queue_id=4)
    assert response.code == 29
    assert response.remark.startswith("request queueId[4] is illegal, topic:[Ranged] topicConfig.writeQueueNums:[4]")
    assert await bc.max_offset("Ranged", 0) == 1


async def test_unknown_topic_without_auto_create(cluster, namesrv, open_broker_client):
    bc = await open_broker_client(await cluster.start_broker(auto_create_topic=False))
    response = await bc.send("Unknown", b"x")
    await assert_refused(bc, response, 17, "", "Unknown")
    assert response.remark == "topic[Unknown] not exist, apply first please!"


async def test_batch_to_retry_topic(bc):
    body = encode_batch([BatchItem(b"x", "")])
    response = await bc.send("%RETRY%cg", body, code=RequestCode.SEND_BATCH_MESSAGE)
    await assert_refused(bc, response, 13, "batch request does not support retry group topic", "%RETRY%cg")


@pytest.mark.parametrize(
    ("code", "drop", "field"),
    [(RequestCode.SEND_MESSAGE, "queueId", "queueId"), (RequestCode.SEND_MESSAGE_V2, "b", "topic"),
     (RequestCode.SEND_MESSAGE_V2, "g", "bornTimestamp")],
)  # fmt: skip
async def test_missing_required_header_field(bc, wire, code, drop, field):
    ext = wire.send_fields("Req", v2=code != RequestCode.SEND_MESSAGE)
    del ext[drop]
    response = await bc.invoke(code, ext, b"x")
    assert response.code == 1
    assert field in response.remark
    assert await bc.max_offset("Req", 0) == 0


async def test_properties_too_long_are_illegal_not_a_system_error(bc):
    """properties > 32767 bytes: MESSAGE_ILLEGAL (13), which producers do not retry (codes.md section 5)."""
    response = await bc.send("LongProps", b"x", properties={"big": "v" * 32_800})
    await assert_refused(bc, response, 13, "32767", "LongProps")


async def test_properties_pushed_over_the_limit_by_broker_additions(bc):
    props = encode_properties({"big": "v" * (32_767 - 10)})  # fits as sent; UNIQ_KEY and CLUSTER do not
    assert len(props.encode()) <= 32_767
    response = await bc.send("LongProps2", b"x", properties=props)
    await assert_refused(bc, response, 13, "32767", "LongProps2")


@pytest.mark.parametrize(
    ("body", "fields", "remark"),
    [
        (b"\x00\x00\x00\x05junk", {}, "batch body truncated in item 0"),
        (encode_batch([BatchItem(b"x", encode_properties({"DELAY": "3"}))]), {},
         "batch request does not support delay messages"),
        (encode_batch([BatchItem(b"x", "")]), {"sys_flag": MessageSysFlag.TRANSACTION_PREPARED},
         "batch request does not support transaction messages"),
    ],
    ids=["malformed", "delay", "transaction"],
)  # fmt: skip
async def test_illegal_batches(bc, body, fields, remark):
    response = await bc.send("BadBatch", body, code=RequestCode.SEND_BATCH_MESSAGE, **fields)
    assert (response.code, response.remark) == (13, remark)
    assert await bc.max_offset("BadBatch", 0) == 0


async def test_send_to_a_read_only_topic(bc):
    create = {"topic": "ReadOnly", "readQueueNums": "2", "writeQueueNums": "2", "perm": "4"}
    assert (await bc.invoke(RequestCode.UPDATE_AND_CREATE_TOPIC, create)).code == 0
    response = await bc.send("ReadOnly", b"x")
    await assert_refused(bc, response, 16, "the topic[ReadOnly] sending message is forbidden", "ReadOnly")


async def test_cpp_style_batch_flag_1_on_code_10_is_a_batch(bc):
    """PyPI rocketmq 0.4.4 (C++) sends batches as SEND_MESSAGE with batch "1" (see compat_tests/cpp/captured)."""
    body = encode_batch([BatchItem(b"one", "UNIQ_KEY\x01A1\x02"), BatchItem(b"two", "UNIQ_KEY\x01A2\x02")])
    ext = {
        "producerGroup": "pg", "topic": "CppBatch", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
        "queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0", "properties": "WAIT\x01true\x02",
        "batch": "1",
    }  # fmt: skip
    response = await bc.invoke(RequestCode.SEND_MESSAGE, ext, body=body)
    assert response.code == 0, response.remark
    assert len(response.ext_fields["msgId"].split(",")) == 2
    assert [m.body for m in await bc.pull_records("CppBatch")] == [b"one", b"two"]


async def test_oneway_sends_are_stored_even_when_the_producer_closes_at_once(bc, cluster, wire):
    """A producer that sends oneway and exits straight away: everything the broker read is stored."""
    frames = b"".join(
        encode_frame(RemotingCommand(code=RequestCode.SEND_MESSAGE_V2, opaque=i, flag=2,
                                     ext_fields=wire.send_fields("OnewayExit"), body=f"m{i}".encode()))
        for i in range(50)
    )  # fmt: skip
    producer = await cluster.connect(bc.broker)
    await producer.stream.send(frames)
    await producer.aclose()

    async def all_stored() -> bool:
        return await bc.max_offset("OnewayExit") == 50

    await wire.wait_until(all_stored)

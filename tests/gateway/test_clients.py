"""HEART_BEAT, GET_CONSUMER_LIST_BY_GROUP, NOTIFY_CONSUMER_IDS_CHANGED, UNREGISTER_CLIENT (headers.md section 4,
routing.md section 5)."""

from __future__ import annotations

import json

import anyio

from codec.codes import FLAG_ONEWAY, RequestCode
from codec.record import decode_records


async def consumer_list(bc, group: str):
    return await bc.invoke(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": group})


async def topic_configs(bc) -> dict:
    return json.loads((await bc.invoke(RequestCode.GET_ALL_TOPIC_CONFIG)).body)["topicConfigTable"]


async def expect_notify(bc, group: str) -> None:
    cmd = await bc.client.receive(timeout=2)
    assert cmd.code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED
    assert cmd.flag == FLAG_ONEWAY  # a oneway request: not a response, no answer expected
    assert cmd.ext_fields == {"consumerGroup": group}
    assert cmd.body == b""


async def expect_silence(bc, seconds: float = 0.15) -> None:
    with anyio.move_on_after(seconds):
        cmd = await bc.client.receive(timeout=5)
        raise AssertionError(f"unexpected frame {cmd}")


async def test_java_heartbeat_creates_the_retry_topic(bc):
    assert "%RETRY%cg-java" not in await topic_configs(bc)
    response = await bc.heartbeat("192.168.0.2@12345#1", "cg-java", {"TopicH": "TagA"}, producer_group="pg-java")
    assert (response.code, response.remark, response.body) == (0, None, b"")
    assert response.version >= 232  # Java clients need >= 232 for SQL92; this is the broker version they store
    retry = (await topic_configs(bc))["%RETRY%cg-java"]
    assert (retry["readQueueNums"], retry["writeQueueNums"], retry["perm"]) == (1, 1, 6)
    listing = await consumer_list(bc, "cg-java")
    assert (listing.code, listing.body) == (0, b'{"consumerIdList":["192.168.0.2@12345#1"]}')


async def test_retry_topic_is_routed_after_a_heartbeat(bc, ns_client, call, wire):
    await bc.heartbeat("c1", "cg-route", {"TopicH": "*"})

    async def routed() -> bool:
        return (await call(ns_client, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "%RETRY%cg-route"})).code == 0

    await wire.wait_until(routed)


async def test_cpp_heartbeat_with_ordinals_and_string_sub_version(bc, wire):
    """C++: integer enums, string subVersion, no expressionType, garbage codeSet, no producerDataSet."""
    await bc.send_ok("TopicCpp", b"a", properties={"TAGS": "TagA"})
    await bc.send_ok("TopicCpp", b"b", properties={"TAGS": "TagB"})
    await bc.send_ok("TopicCpp", b"c", properties={"TAGS": "TagC"})
    body = json.dumps({
        "clientID": "10.1.1.1@cpp",
        "consumerDataSet": [{
            "groupName": "cg-cpp", "consumeType": 1, "messageModel": 1, "consumeFromWhere": 4,
            "subscriptionDataSet": [{"topic": "TopicCpp", "subString": "TagA || TagC", "subVersion": "1700000000999",
                                     "tagsSet": ["TagA", "TagC"], "codeSet": [0, 0]}],
        }],
    }).encode()  # fmt: skip
    header = wire.json_header(RequestCode.HEART_BEAT, {}, opaque=77, language="CPP", version=63)
    await bc.client.stream.send(wire.raw_frame(header, body))
    # The new group's first member is notified too (Java does the same), then the heartbeat is answered.
    await expect_notify(bc, "cg-cpp")
    response = await bc.client.receive()
    assert (response.code, response.opaque) == (0, 77)

    assert "%RETRY%cg-cpp" in await topic_configs(bc)
    connections = await bc.invoke(RequestCode.GET_CONSUMER_CONNECTION_LIST, {"consumerGroup": "cg-cpp"})
    data = json.loads(connections.body)
    assert (data["consumeType"], data["messageModel"], data["consumeFromWhere"]) == (
        "CONSUME_PASSIVELY", "CLUSTERING", "CONSUME_FROM_FIRST_OFFSET")  # fmt: skip
    [conn] = data["connectionSet"]
    assert (conn["clientId"], conn["language"], conn["version"]) == ("10.1.1.1@cpp", "CPP", 63)
    sub = data["subscriptionTable"]["TopicCpp"]
    assert sub["subVersion"] == 1700000000999
    assert sub["expressionType"] == "TAG"
    assert sub["codeSet"] == sorted([2598919, 2598921])  # rebuilt from subString, not the client's codeSet
    pulled = await bc.pull_records("TopicCpp", 0, 0, group="cg-cpp")
    assert [m.body for m in pulled] == [b"a", b"c"]


async def test_consumer_list_without_consumers(bc):
    response = await consumer_list(bc, "nobody")
    assert (response.code, response.remark, response.body) == (1, "no consumer for this group, nobody", b"")


async def test_second_consumer_triggers_notify_to_the_first(bc, open_broker_client):
    await bc.heartbeat("client-1", "cg-n", {"TopicN": "*"})
    await expect_notify(bc, "cg-n")  # joining a new group
    await bc.heartbeat("client-1", "cg-n", {"TopicN": "*"})
    await expect_silence(bc)  # an unchanged heartbeat notifies nobody

    second = await open_broker_client(bc.broker)
    assert (await second.heartbeat("client-2", "cg-n", {"TopicN": "*"})).code == 0
    await expect_notify(bc, "cg-n")
    await expect_notify(second, "cg-n")
    listing = await consumer_list(bc, "cg-n")
    assert json.loads(listing.body) == {"consumerIdList": ["client-1", "client-2"]}

    # The first client can keep using its connection after the broker's request.
    assert (await consumer_list(bc, "cg-n")).code == 0


async def test_unregister_client(bc, open_broker_client):
    await bc.heartbeat("client-1", "cg-u", {"TopicU": "*"}, producer_group="pg-u")
    await expect_notify(bc, "cg-u")
    second = await open_broker_client(bc.broker)
    await second.heartbeat("client-2", "cg-u", {"TopicU": "*"})
    await expect_notify(bc, "cg-u")

    response = await second.invoke(RequestCode.UNREGISTER_CLIENT, {"clientID": "client-2", "consumerGroup": "cg-u"})
    assert (response.code, response.remark) == (0, None)
    await expect_notify(bc, "cg-u")
    assert json.loads((await consumer_list(bc, "cg-u")).body) == {"consumerIdList": ["client-1"]}

    producer_only = await bc.invoke(RequestCode.UNREGISTER_CLIENT, {"clientID": "client-1", "producerGroup": "pg-u"})
    assert producer_only.code == 0
    assert json.loads((await consumer_list(bc, "cg-u")).body) == {"consumerIdList": ["client-1"]}
    await bc.invoke(RequestCode.UNREGISTER_CLIENT, {"clientID": "client-1", "consumerGroup": "cg-u"})
    assert (await consumer_list(bc, "cg-u")).code == 1

    missing = await bc.invoke(RequestCode.UNREGISTER_CLIENT, {"consumerGroup": "cg-u"})
    assert missing.code == 1
    assert "clientID" in missing.remark


async def test_closing_a_connection_removes_its_consumer(bc, open_broker_client, wire):
    await bc.heartbeat("client-1", "cg-c", {"TopicC": "*"})
    await expect_notify(bc, "cg-c")
    second = await open_broker_client(bc.broker)
    await second.heartbeat("client-2", "cg-c", {"TopicC": "*"})
    await expect_notify(bc, "cg-c")

    await second.client.aclose()
    await expect_notify(bc, "cg-c")
    assert json.loads((await consumer_list(bc, "cg-c")).body) == {"consumerIdList": ["client-1"]}

    await bc.client.aclose()
    other = await open_broker_client(bc.broker)

    async def group_gone() -> bool:
        return (await consumer_list(other, "cg-c")).code == 1

    await wire.wait_until(group_gone)


async def test_heartbeat_subscription_change_notifies(bc):
    await bc.heartbeat("client-1", "cg-s", {"TopicS": "*"})
    await expect_notify(bc, "cg-s")
    await bc.heartbeat("client-1", "cg-s", {"TopicS": "*", "TopicS2": "x"})
    await expect_notify(bc, "cg-s")
    await bc.send_ok("TopicS2", b"x", properties={"TAGS": "x"})
    await bc.send_ok("TopicS2", b"y", properties={"TAGS": "y"})
    response = await bc.pull("TopicS2", 0, 0, group="cg-s")
    assert [m.body for m in decode_records(response.body)] == [b"x"]


async def test_bad_heartbeat_body(bc):
    response = await bc.invoke(RequestCode.HEART_BEAT, body=b'{"consumerDataSet":[]}')
    assert (response.code, response.remark) == (1, "heartbeat body has no clientID")

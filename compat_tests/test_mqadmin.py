"""The stock ``mqadmin`` (Maven Central rocketmq-tools 5.3.3 and 4.9.8) against ``pocketmq up``: what it prints
must be what was really sent and consumed (issue 13; the list of subcommands and what pocketmq answers is in
docs/admin.md, the comparison with Apache in compat_tests/mqadmin_matrix.py).

One pocketmq for the module; 25 messages sent to one queue of ``AdminT`` over remoting and 10 of them pulled by
the group ``admin-g`` before the tools run. The subcommands about live clients and message queries use ``LiveT``:
8 messages with keys and a tag sent by the stock Java client (4.9.8) and consumed by a push consumer of
``admin-live-g`` that stays online for the module. Each test runs one subcommand with both tool versions.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from codec import jsonbody
from codec.codes import PullSysFlag, RequestCode
from codec.command import request
from compat_tests import harness, java_driver, mqadmin_tool
from compat_tests.grpc_consumer import GrpcTarget, send_remoting
from remoting.client import RemotingClient

pytestmark = [pytest.mark.compat]

TOPIC, GROUP, SENT, PULLED = "AdminT", "admin-g", 25, 10


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    server = harness.PocketMQ(data_dir=tmp_path_factory.mktemp("pocketmq-mqadmin") / "data")
    server.start()
    try:
        target = GrpcTarget("pocketmq", "", None, server.broker_addr, server.namesrv_addr)
        for i in range(SENT):
            send_remoting(target, TOPIC, f"admin-{i}".encode(), {"TAGS": "A"})
        anyio.run(_pull, server.broker_port, PULLED)
        yield server
    finally:
        server.stop()


async def _pull(port: int, count: int) -> None:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        ext = {
            "consumerGroup": GROUP, "topic": TOPIC, "queueId": "0", "queueOffset": "0", "maxMsgNums": str(count),
            "sysFlag": str(int(PullSysFlag.SUBSCRIPTION)), "commitOffset": "0", "suspendTimeoutMillis": "0",
            "subscription": "*", "subVersion": "0", "expressionType": "TAG",
        }  # fmt: skip
        response = await client.invoke(request(RequestCode.PULL_MESSAGE, ext))
        assert response.code == 0, response.remark
    finally:
        await client.aclose()


@pytest.fixture(scope="module", params=mqadmin_tool.TOOL_VERSIONS)
def mqadmin(
    request: pytest.FixtureRequest, server: harness.PocketMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[mqadmin_tool.MQAdmin]:
    java, mvn = harness.require_tool("java"), harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed to run mqadmin")
    try:
        classpath = mqadmin_tool.build(mvn, request.param)
    except mqadmin_tool.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    home = tmp_path_factory.mktemp(f"mqadmin-{request.param}")
    tool = mqadmin_tool.MQAdmin(java, classpath, server.namesrv_addr, Path(home))
    try:
        yield tool
    finally:
        tool.close()  # its shared JVM


def _no_error(out: mqadmin_tool.Output) -> None:
    assert out.returncode == 0 and "Exception" not in out.text and "CODE:" not in out.text, out.text[-3000:]


def _key_values(out: mqadmin_tool.Output) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in out.lines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_broker_status_counts_puts_and_gets(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    out = mqadmin("brokerStatus", "-b", server.broker_addr)
    _no_error(out)
    status = _key_values(out)
    # The other tests send and read too (their tool version runs first): every stored message was put today, and
    # at least the first pull was a get.
    assert status["msgPutTotalTodayNow"] == str(anyio.run(_stored_total, server.broker_port))
    assert int(status["msgGetTotalTodayNow"]) >= PULLED
    assert len(status["putTps"].split()) == 3 and status["getTransferedTps"] == status["getTransferredTps"]
    assert int(status["earliestMessageTimeStamp"]) > 0 and 0 < float(status["commitLogDiskRatio"]) < 1


def test_cluster_list_shows_the_broker_with_real_figures(
    mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ
) -> None:
    out = mqadmin("clusterList")
    _no_error(out)
    [row] = [line.split() for line in out.lines() if server.broker_addr in line]
    assert row[:4] == ["DefaultCluster", "broker-a", "0", server.broker_addr]
    hours, space = (
        float(row[-3 if row[-1] in ("true", "false") else -2]),
        float(row[-1 if row[-1] not in ("true", "false") else -2]),
    )
    assert 0 <= hours < 1, f"#Hour is the age of the oldest message: {row}"
    assert 0 < space < 1, row


def test_stats_all_counts_a_day_of_puts_and_gets(mqadmin: mqadmin_tool.MQAdmin) -> None:
    """One row per topic and consuming group: #InMsg24Hour is what was sent, #OutMsg24Hour what the group got."""
    out = mqadmin("statsAll")
    _no_error(out)
    [row] = [line.split() for line in out.lines() if re.match(rf"{TOPIC}\s+{GROUP}\b", line)]
    assert row[-2:] == [str(SENT), str(PULLED)], out.text
    assert float(row[-4]) >= 0 and float(row[-3]) >= 0, f"#InTPS and #OutTPS are rates: {row}"


def test_topic_status_shows_the_offsets(mqadmin: mqadmin_tool.MQAdmin) -> None:
    out = mqadmin("topicStatus", "-t", TOPIC)
    _no_error(out)
    rows = [line.split() for line in out.lines() if line.startswith("broker-a")]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("0", "0", str(SENT)),
        ("1", "0", "0"),
        ("2", "0", "0"),
        ("3", "0", "0"),
    ]


def test_sub_groups_are_created_listed_and_deleted(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    group = "sub-" + re.sub(r"[^a-zA-Z0-9]", "_", mqadmin.home.name)
    _no_error(mqadmin("updateSubGroup", "-b", server.broker_addr, "-g", group, "-r", "3"))
    configs = anyio.run(_group_configs, server.broker_port)
    assert configs[group]["retryMaxTimes"] == 3
    _no_error(mqadmin("deleteSubGroup", "-b", server.broker_addr, "-g", group))
    assert group not in anyio.run(_group_configs, server.broker_port)


async def _group_configs(port: int) -> dict[str, dict[str, object]]:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        response = await client.invoke(request(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG, {}))
    finally:
        await client.aclose()
    return jsonbody.loads(response.body)["subscriptionGroupTable"]


def test_get_broker_config(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    out = mqadmin("getBrokerConfig", "-b", server.broker_addr)
    _no_error(out)
    config = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.lines() if "=  " in line)}
    assert config["brokerName"] == "broker-a" and config["listenPort"] == str(server.broker_port)
    assert config["namesrvAddr"] == server.namesrv_addr and config["flushDiskType"] == "ASYNC_FLUSH"


def test_get_namesrv_config(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    out = mqadmin("getNamesrvConfig")
    _no_error(out)
    config = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.lines() if "=  " in line)}
    assert config["listenPort"] == str(server.namesrv_port)


def test_clean_expired_cq(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    out = mqadmin("cleanExpiredCQ", "-b", server.broker_addr)
    _no_error(out)
    assert out.lines() == ["success"]


def test_wipe_and_add_write_perm(mqadmin: mqadmin_tool.MQAdmin) -> None:
    def route_perms() -> set[int]:
        out = mqadmin("topicRoute", "-t", TOPIC)
        _no_error(out)
        return {int(m) for m in re.findall(r'"perm"\s*:\s*(\d+)', out.text)}

    wiped = mqadmin("wipeWritePerm", "-b", "broker-a")
    _no_error(wiped)
    assert "wipe write perm of broker[broker-a]" in wiped.text and "OK" in wiped.text
    assert route_perms() == {4}, "routed read-only"
    added = mqadmin("addWritePerm", "-b", "broker-a")
    _no_error(added)
    assert route_perms() == {6}


async def _commit(port: int, group: str, offsets: dict[int, int]) -> None:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        for queue_id, offset in offsets.items():
            ext = {"consumerGroup": group, "topic": TOPIC, "queueId": str(queue_id), "commitOffset": str(offset)}
            assert (await client.invoke(request(RequestCode.UPDATE_CONSUMER_OFFSET, ext))).code == 0
    finally:
        await client.aclose()


async def _committed(port: int, group: str, queue_id: int) -> int:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        ext = {"consumerGroup": group, "topic": TOPIC, "queueId": str(queue_id)}
        answer = await client.invoke(request(RequestCode.QUERY_CONSUMER_OFFSET, ext))
    finally:
        await client.aclose()
    return int(answer.ext_fields["offset"])


def test_skip_accumulated_then_reset_by_time(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    """With no consumer online the broker answers CONSUMER_NOT_ONLINE and the tool sets the offsets itself: to the
    end of the queue (skip), then back to the first message stored at or after a time (reset, -s with ms)."""
    group = "reset-" + re.sub(r"[^a-zA-Z0-9]", "_", mqadmin.home.name)
    anyio.run(_commit, server.broker_port, group, {0: 3, 1: 0, 2: 0, 3: 0})
    out = mqadmin("skipAccumulatedMessage", "-g", group, "-t", TOPIC)
    assert "CODE: 1 " not in out.text, out.text[-2000:]
    assert anyio.run(_committed, server.broker_port, group, 0) == SENT, out.text[-2000:]
    out = mqadmin("resetOffsetByTime", "-g", group, "-t", TOPIC, "-s", "0")
    assert "CODE: 1 " not in out.text, out.text[-2000:]
    assert anyio.run(_committed, server.broker_port, group, 0) == 0, out.text[-2000:]


def test_broker_consume_stats_shows_the_lag(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    group = "lag-" + re.sub(r"[^a-zA-Z0-9]", "_", mqadmin.home.name)
    anyio.run(_commit, server.broker_port, group, {0: 5, 1: 0, 2: 0, 3: 0})
    out = mqadmin("brokerConsumeStats", "-b", server.broker_addr)
    _no_error(out)
    rows = [line.split() for line in out.lines() if line.startswith(TOPIC) and group in line]
    by_queue = {int(r[3]): (int(r[4]), int(r[5])) for r in rows}
    assert by_queue == {0: (SENT, 5)}, out.text  # the tool prints only queues with a consumed message
    total = int(out.lines()[-1].rsplit(":", 1)[1])
    assert total >= SENT - 5, out.text


def test_ha_status(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    out = mqadmin("haStatus", "-b", server.broker_addr)
    if "4.9.8" in mqadmin.classpath:
        assert "The sub command haStatus not exist" in out.text  # the 4.9 tool has no haStatus
        return
    _no_error(out)
    status = dict(line.split("\t", 1) for line in out.lines() if line.startswith("#") and "\t" in line)
    assert status["#MasterAddr"] == server.broker_addr and status["#SlaveNum"] == "0"
    assert int(status["#MasterCommitLogMaxOffset"]) > 0


def test_query_cq_lists_index_entries(mqadmin: mqadmin_tool.MQAdmin) -> None:
    out = mqadmin("queryCq", "-t", TOPIC, "-q", "0", "-i", "1", "-c", "2")
    _no_error(out)
    assert f"max: {SENT}, min: 0" in out.text
    entries = re.findall(r"physicOffset=(\d+), physicSize=(\d+), tagsCode=(-?\d+)", out.text)
    assert len(entries) == 2 and entries[0][2] == str(ord("A")), out.text  # the hash code of tag "A"
    assert int(entries[1][0]) == int(entries[0][0]) + int(entries[0][1]), "records follow each other"


def test_update_broker_config(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    for value in ("false", "true"):
        out = mqadmin("updateBrokerConfig", "-b", server.broker_addr, "-k", "traceOn", "-v", value)
        _no_error(out)
        assert "update broker config success" in out.text
        config = mqadmin("getBrokerConfig", "-b", server.broker_addr)
        assert re.search(rf"traceOn\s+=\s+{value}", config.text), config.text
    refused = mqadmin("updateBrokerConfig", "-b", server.broker_addr, "-k", "brokerName", "-v", "other")
    assert "cannot update brokerName at run time" in refused.text


# ------------------------------------------------------------------------------------ with a live Java consumer

LIVE_TOPIC, LIVE_GROUP, LIVE_SENT, LIVE_TAG, LIVE_KEY = "LiveT", "admin-live-g", 8, "TagL", "lkey-"
CLIENT_VERSION = "4.9.8"


@dataclass(frozen=True)
class Live:
    """What the stock Java client did on ``LiveT``: the producer's result lines (msgId, offsetMsgId, queueId,
    queueOffset per message), and the client id of the push consumer that is still online."""

    sent: list[dict[str, Any]]
    client_id: str

    def max_offsets(self) -> dict[int, int]:
        return _queue_ends(self.sent)


def _queue_ends(sent: list[dict[str, Any]]) -> dict[int, int]:
    """Per queue the offset after the last message the producer reported there."""
    ends: dict[int, int] = {}
    for result in sent:
        queue_id = int(result["queueId"])
        ends[queue_id] = max(ends.get(queue_id, 0), int(result["queueOffset"]) + 1)
    return ends


@pytest.fixture(scope="module")
def live(server: harness.PocketMQ, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    java, mvn = harness.require_tool("java"), harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed for the Java client")
    try:
        classpath = java_driver.build(mvn, CLIENT_VERSION)
    except java_driver.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    client = java_driver.JavaClient(java, CLIENT_VERSION, classpath, Path(tmp_path_factory.mktemp("live-client")))
    anyio.run(_create_topic, server.broker_port, LIVE_TOPIC, 4)
    messages = [
        java_driver.Message(f"live-{i}".encode(), tags=LIVE_TAG, keys=[f"{LIVE_KEY}{i}"]) for i in range(LIVE_SENT)
    ]
    try:
        sent = client.produce(server.namesrv_addr, LIVE_TOPIC, "admin-live-producer", "sync", messages)
        consumer = client.start_consume(server.namesrv_addr, LIVE_TOPIC, LIVE_GROUP, expect=10_000, timeout=900)
        consumer.wait_ready()
        assert consumer.wait_bodies([m.body for m in messages], 60), consumer.describe()
        deadline = time.monotonic() + 20  # a push consumer commits its offsets every 5 s
        while anyio.run(_committed_offsets, server.broker_port, LIVE_GROUP, LIVE_TOPIC) != _queue_ends(sent):
            assert time.monotonic() < deadline, "the live consumer did not commit its offsets"
            time.sleep(0.5)
        client_ids = anyio.run(_consumer_ids, server.broker_port, LIVE_GROUP)
        assert len(client_ids) == 1, client_ids
        yield Live(sent, client_ids[0])
    finally:
        client.close()


async def _create_topic(port: int, topic: str, queues: int) -> None:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        ext = {"topic": topic, "readQueueNums": str(queues), "writeQueueNums": str(queues), "perm": "6"}
        answer = await client.invoke(request(RequestCode.UPDATE_AND_CREATE_TOPIC, ext))
        assert answer.code == 0, answer.remark
    finally:
        await client.aclose()


async def _committed_offsets(port: int, group: str, topic: str) -> dict[int, int]:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        offsets = {}
        for queue_id in range(4):
            ext = {"consumerGroup": group, "topic": topic, "queueId": str(queue_id)}
            answer = await client.invoke(request(RequestCode.QUERY_CONSUMER_OFFSET, ext))
            if answer.code == 0 and int(answer.ext_fields["offset"]) > 0:
                offsets[queue_id] = int(answer.ext_fields["offset"])
    finally:
        await client.aclose()
    return offsets


async def _consumer_ids(port: int, group: str) -> list[str]:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        answer = await client.invoke(request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": group}))
    finally:
        await client.aclose()
    return list(jsonbody.loads(answer.body)["consumerIdList"])


async def _topic_configs(port: int) -> dict[str, dict[str, Any]]:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        answer = await client.invoke(request(RequestCode.GET_ALL_TOPIC_CONFIG, {}))
    finally:
        await client.aclose()
    return jsonbody.loads(answer.body)["topicConfigTable"]


def _per_tool(mqadmin: mqadmin_tool.MQAdmin, prefix: str) -> str:
    """A name of its own for each tool version (the tests of both run against one server)."""
    return prefix + re.sub(r"[^a-zA-Z0-9]", "_", mqadmin.home.name)


def _is_5x(mqadmin: mqadmin_tool.MQAdmin) -> bool:
    return "rocketmq-tools/5." in mqadmin.classpath


def _fields(out: mqadmin_tool.Output) -> dict[str, str]:
    """``Name:   value`` lines (the message queries) as a dict: the first occurrence of each name."""
    found: dict[str, str] = {}
    for line in out.lines():
        match = re.match(r"^([A-Z][A-Za-z ]+):\s+(.*)$", line)
        if match:
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def test_topic_list_and_topic_cluster_list(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    out = mqadmin("topicList")
    _no_error(out)
    assert {TOPIC, LIVE_TOPIC, f"%RETRY%{LIVE_GROUP}"} <= set(out.lines()), out.text
    clusters = mqadmin("topicClusterList", "-t", LIVE_TOPIC)
    _no_error(clusters)
    assert clusters.lines() == ["DefaultCluster"]


def test_update_and_delete_topic(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    topic = _per_tool(mqadmin, "new-")
    created = mqadmin("updateTopic", "-b", server.broker_addr, "-t", topic, "-r", "2", "-w", "3")
    _no_error(created)
    assert f"create topic to {server.broker_addr} success." in created.text
    config = anyio.run(_topic_configs, server.broker_port)[topic]
    assert (config["readQueueNums"], config["writeQueueNums"], config["perm"]) == (2, 3, 6)
    route = mqadmin("topicRoute", "-t", topic)
    _no_error(route)
    assert re.search(r'"readQueueNums"\s*:\s*2', route.text) and re.search(r'"writeQueueNums"\s*:\s*3', route.text)
    deleted = mqadmin("deleteTopic", "-c", "DefaultCluster", "-t", topic)
    _no_error(deleted)
    assert f"delete topic [{topic}] from cluster [DefaultCluster] success." in deleted.text
    assert topic not in anyio.run(_topic_configs, server.broker_port)
    assert "No topic route info" in mqadmin("topicRoute", "-t", topic).text


def test_update_topic_perm(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    topic = _per_tool(mqadmin, "perm-")
    anyio.run(_create_topic, server.broker_port, topic, 2)
    out = mqadmin("updateTopicPerm", "-b", server.broker_addr, "-t", topic, "-p", "4")
    _no_error(out)
    assert f"update topic perm from 6 to 4 in {server.broker_addr} success." in out.text
    assert anyio.run(_topic_configs, server.broker_port)[topic]["perm"] == 4


def test_get_consumer_config_of_a_live_and_a_configured_group(
    mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ, live: Live
) -> None:
    """A group that only connected has Apache's default config (autoCreateSubscriptionGroup); a configured one its
    own; an unknown group prints nothing, as with Apache."""
    out = mqadmin("getConsumerConfig", "-g", LIVE_GROUP)
    _no_error(out)
    assert "DefaultCluster:broker-a" in out.lines()[0], out.text
    config = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.lines() if "=  " in line)}
    assert config["groupName"] == LIVE_GROUP and config["retryMaxTimes"] == "16" and config["consumeEnable"] == "true"
    group = _per_tool(mqadmin, "conf-")
    _no_error(mqadmin("updateSubGroup", "-b", server.broker_addr, "-g", group, "-r", "5"))
    configured = mqadmin("getConsumerConfig", "-g", group)
    assert re.search(r"retryMaxTimes\s+=\s+5\b", configured.text), configured.text
    unknown = mqadmin("getConsumerConfig", "-g", "nobody-g")
    _no_error(unknown)
    assert unknown.lines() == []


def test_consumer_progress_of_a_live_group(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    """Per queue the broker and the consumer offset (all consumed: diff 0); the 5.3.3 tool's ``-s true`` asks the
    consumer which queues it holds and prints its IP beside them."""
    out = mqadmin("consumerProgress", "-g", LIVE_GROUP, *(["-s", "true"] if _is_5x(mqadmin) else []))
    _no_error(out)
    rows = [line.split() for line in out.lines() if line.startswith(LIVE_TOPIC + " ")]
    progress = {int(r[2]): (int(r[3]), int(r[4])) for r in rows}
    assert progress == {q: (end, end) for q, end in live.max_offsets().items()} | {
        q: (0, 0) for q in range(4) if q not in live.max_offsets()
    }, out.text
    if _is_5x(mqadmin):
        client_ip = live.client_id.split("@")[0]
        assert all(r[5] == client_ip for r in rows), out.text
    assert re.search(r"Diff Total:\s*0\b", out.text), out.text
    groups = mqadmin("consumerProgress")
    _no_error(groups)
    [row] = [line.split() for line in groups.lines() if line.startswith(LIVE_GROUP + " ")]
    assert row[1:5] == ["1", "V4_9_8", "PUSH", "CLUSTERING"] and row[-1] == "0", groups.text


def test_consumer_connection_shows_the_live_client(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    out = mqadmin("consumerConnection", "-g", LIVE_GROUP)
    _no_error(out)
    [row] = [line.split() for line in out.lines() if live.client_id in line]
    assert row[-2:] == ["JAVA", "V4_9_8"] and row[-3].startswith("127.0.0.1:"), out.text
    assert re.search(rf"^{LIVE_TOPIC}\s+\*$", out.text, re.M) and "MessageModel: CLUSTERING" in out.text
    assert "ConsumeType: CONSUME_PASSIVELY" in out.text


def test_producer_connection_of_the_client_inner_producer(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    """Every 4.x client instance heartbeats its inner producer group, so the consumer's client shows up here."""
    out = mqadmin("producerConnection", "-g", "CLIENT_INNER_PRODUCER", "-t", LIVE_TOPIC)
    _no_error(out)
    [row] = [line.split() for line in out.lines() if live.client_id in line]
    assert row[-2:] == ["JAVA", "V4_9_8"], out.text


def test_consumer_status_asks_the_live_client(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    out = mqadmin("consumerStatus", "-g", LIVE_GROUP, "-i", live.client_id)
    _no_error(out)
    assert re.search(r"PROP_CLIENT_VERSION\s+:\s+V4_9_8", out.text), out.text
    assert re.search(rf"Topic: {LIVE_TOPIC}\s+ClassFilter: false\s+SubExpression: \*", out.text), out.text
    committed = {
        int(m.group(1)): int(m.group(2))
        for m in re.finditer(rf"^{LIVE_TOPIC}\s+broker-a\s+(\d+)\s+(\d+)", out.text, re.M)
    }
    assert {q: o for q, o in committed.items() if o} == live.max_offsets(), out.text


def _assert_first_message(out: mqadmin_tool.Output, live: Live) -> None:
    _no_error(out)
    fields, first = _fields(out), live.sent[0]
    assert fields["Topic"] == LIVE_TOPIC and fields["Tags"] == f"[{LIVE_TAG}]" and fields["Keys"] == f"[{LIVE_KEY}0]"
    assert fields["Queue ID"] == str(first["queueId"]) and fields["Queue Offset"] == str(first["queueOffset"])
    assert f"UNIQ_KEY={first['msgId']}" in fields["Properties"], out.text
    assert re.search(rf"MessageTrack \[consumerGroup={LIVE_GROUP}, trackType=CONSUMED", out.text), out.text


def _no_error_but_tracks(out: mqadmin_tool.Output) -> mqadmin_tool.Output:
    """The message queries end with a MessageTrack per group: the tool's own TOOLS_CONSUMER is 'not online'
    (CODE 206), as it is with Apache."""
    text = re.sub(r"MessageTrack \[consumerGroup=TOOLS_CONSUMER[^\]]*\]", "", out.text)
    return mqadmin_tool.Output(out.returncode, text)


def test_query_msg_by_id(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    topic = ["-t", LIVE_TOPIC] if _is_5x(mqadmin) else []  # the 5.3.3 tool requires the topic
    out = mqadmin("queryMsgById", *topic, "-i", str(live.sent[0]["offsetMsgId"]))
    _assert_first_message(_no_error_but_tracks(out), live)
    assert _fields(out)["OffsetID"] == live.sent[0]["offsetMsgId"]


def test_query_msg_by_unique_key(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    out = mqadmin("queryMsgByUniqueKey", "-t", LIVE_TOPIC, "-i", str(live.sent[0]["msgId"]))
    _assert_first_message(_no_error_but_tracks(out), live)


def test_query_msg_by_offset(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    first = live.sent[0]
    out = mqadmin(
        "queryMsgByOffset", "-t", LIVE_TOPIC, "-b", "broker-a", "-i", str(first["queueId"]),
        "-o", str(first["queueOffset"]),
    )  # fmt: skip
    _assert_first_message(_no_error_but_tracks(out), live)


def test_query_msg_by_key(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    out = mqadmin("queryMsgByKey", "-t", LIVE_TOPIC, "-k", f"{LIVE_KEY}3")
    _no_error(out)
    rows = [line.split() for line in out.lines() if not line.startswith("#")]
    third = live.sent[3]
    assert rows == [[str(third["msgId"]), str(third["queueId"]), str(third["queueOffset"])]], out.text


def test_send_message(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    topic = _per_tool(mqadmin, "send-")
    anyio.run(_create_topic, server.broker_port, topic, 1)
    out = mqadmin("sendMessage", "-t", topic, "-p", "from the tool", "-k", "tool-key", "-c", "TagS")
    _no_error(out)
    [row] = [line.split() for line in out.lines() if line.startswith("broker-a")]
    assert row[:3] == ["broker-a", "0", "SEND_OK"], out.text
    found = mqadmin("queryMsgByKey", "-t", topic, "-k", "tool-key")
    assert re.search(rf"^{row[3]}\s+0\s+0$", found.text, re.M), found.text


def test_consume_message_from_an_offset(mqadmin: mqadmin_tool.MQAdmin) -> None:
    out = mqadmin("consumeMessage", "-t", TOPIC, "-b", "broker-a", "-i", "0", "-o", "3", "-c", "2")
    _no_error(out)
    assert "Consume ok" in out.text
    got = re.findall(r"queueId=0, .*?queueOffset=(\d+),.* BODY: (\S+)", out.text)
    assert got == [("3", "admin-3"), ("4", "admin-4")], out.text


def test_print_msg_prints_every_queue(mqadmin: mqadmin_tool.MQAdmin) -> None:
    out = mqadmin("printMsg", "-t", TOPIC, "-d", "true")
    _no_error(out)
    bounds = re.findall(r"minOffset=0, maxOffset=(\d+), MessageQueue \[topic=AdminT, brokerName=broker-a, "
                        r"queueId=(\d+)\]", out.text)  # fmt: skip
    assert {queue: end for end, queue in bounds} == {"0": str(SENT), "1": "0", "2": "0", "3": "0"}, out.text
    assert re.findall(r"BODY: (\S+)", out.text) == [f"admin-{i}" for i in range(SENT)]


def test_clone_group_offset_of_a_live_group(
    mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ, live: Live
) -> None:
    group = _per_tool(mqadmin, "clone-")
    out = mqadmin("cloneGroupOffset", "-s", LIVE_GROUP, "-d", group, "-t", LIVE_TOPIC)
    _no_error(out)
    assert f"clone group offset success. srcGroup[{LIVE_GROUP}], destGroup=[{group}]" in out.text
    assert anyio.run(_committed_offsets, server.broker_port, group, LIVE_TOPIC) == live.max_offsets()


def test_export_configs(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    target = mqadmin.home / "export"
    out = mqadmin("exportConfigs", "-c", "DefaultCluster", "-f", str(target))
    _no_error(out)
    assert f"export {target}/configs.json success" in out.text
    exported = json.loads((target / "configs.json").read_text())
    assert exported["clusterScale"] == {"namesrvSize": 1, "masterBrokerSize": 1, "slaveBrokerSize": 0}
    broker = exported["brokerConfigs"]["broker-a"]
    assert broker["brokerClusterName"] == "DefaultCluster" and broker["brokerId"] == "0"
    assert broker["flushDiskType"] == "ASYNC_FLUSH" and broker["maxMessageSize"] == str(4 * 1024 * 1024)


def test_update_order_conf_put_get_delete(mqadmin: mqadmin_tool.MQAdmin) -> None:
    topic = _per_tool(mqadmin, "order-")
    put = mqadmin("updateOrderConf", "-t", topic, "-m", "put", "-v", "broker-a:4")
    _no_error(put)
    got = mqadmin("updateOrderConf", "-t", topic, "-m", "get")
    _no_error(got)
    assert f"get orderConf success. topic=[{topic}], orderConf=[broker-a:4]" in got.text
    _no_error(mqadmin("updateOrderConf", "-t", topic, "-m", "delete"))
    gone = mqadmin("updateOrderConf", "-t", topic, "-m", "get")
    assert "CODE: 22" in gone.text and "No config item" in gone.text, gone.text


def test_allocate_mq_over_the_route(mqadmin: mqadmin_tool.MQAdmin, live: Live) -> None:
    out = mqadmin("allocateMQ", "-t", LIVE_TOPIC, "-i", "10.0.0.1,10.0.0.2")
    _no_error(out)
    result = json.loads(out.lines()[-1])["result"]
    assert sorted(q["queueId"] for queues in result.values() for q in queues) == [0, 1, 2, 3]
    assert {len(queues) for queues in result.values()} == {2}


def test_check_msg_send_rt(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    topic = _per_tool(mqadmin, "rt-")
    anyio.run(_create_topic, server.broker_port, topic, 2)
    out = mqadmin("checkMsgSendRT", "-t", topic, "-a", "4", "-s", "16")
    _no_error(out)
    rows = [line.split() for line in out.lines() if line.startswith("broker-a")]
    assert len(rows) == 4 and all(r[2] == "true" for r in rows), out.text
    assert sum(anyio.run(_max_offsets, server.broker_port, topic, 2)) == 4


async def _max_offsets(port: int, topic: str, queues: int) -> list[int]:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        ends = []
        for queue_id in range(queues):
            answer = await client.invoke(
                request(RequestCode.GET_MAX_OFFSET, {"topic": topic, "queueId": str(queue_id)})
            )
            ends.append(int(answer.ext_fields["offset"]))
    finally:
        await client.aclose()
    return ends


async def _stored_total(port: int) -> int:
    """How many messages the broker stores, over every queue of every topic."""
    configs = await _topic_configs(port)
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        total = 0
        for topic, config in configs.items():
            for queue_id in range(config["writeQueueNums"]):
                ext = {"topic": topic, "queueId": str(queue_id)}
                answer = await client.invoke(request(RequestCode.GET_MAX_OFFSET, ext))
                total += int(answer.ext_fields["offset"]) if answer.code == 0 else 0
    finally:
        await client.aclose()
    return total

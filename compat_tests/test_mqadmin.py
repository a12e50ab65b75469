"""The stock ``mqadmin`` (Maven Central rocketmq-tools 5.3.3 and 4.9.8) against ``pocketmq up``: what it prints
must be what was really sent and consumed (issue 13: brokerStatus, clusterList, statsAll, topicStatus, getBrokerConfig,
getNamesrvConfig, cleanExpiredCQ, updateSubGroup / deleteSubGroup, wipeWritePerm / addWritePerm,
skipAccumulatedMessage, resetOffsetByTime, brokerConsumeStats, haStatus, queryCq, updateBrokerConfig so far).

One pocketmq for the module; 25 messages sent to one queue of ``AdminT`` over remoting and 10 of them pulled by
the group ``admin-g`` before the tools run. Each test runs one subcommand with both tool versions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from codec import jsonbody
from codec.codes import PullSysFlag, RequestCode
from codec.command import request
from compat_tests import harness, mqadmin_tool
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
) -> mqadmin_tool.MQAdmin:
    java, mvn = harness.require_tool("java"), harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed to run mqadmin")
    try:
        classpath = mqadmin_tool.build(mvn, request.param)
    except mqadmin_tool.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    home = tmp_path_factory.mktemp(f"mqadmin-{request.param}")
    return mqadmin_tool.MQAdmin(java, classpath, server.namesrv_addr, Path(home))


def _no_error(out: mqadmin_tool.Output) -> None:
    assert out.returncode == 0 and "Exception" not in out.text and "CODE:" not in out.text, out.text[-3000:]


def _key_values(out: mqadmin_tool.Output) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in out.lines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_broker_status_counts_puts_and_gets(mqadmin: mqadmin_tool.MQAdmin, server: harness.PocketMQ) -> None:
    out = mqadmin("brokerStatus", "-b", server.broker_addr)
    _no_error(out)
    status = _key_values(out)
    assert status["msgPutTotalTodayNow"] == str(SENT) and status["msgGetTotalTodayNow"] == str(PULLED)
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

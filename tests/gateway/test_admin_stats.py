"""Runtime statistics over remoting: GET_BROKER_RUNTIME_INFO (brokerStatus, clusterList), VIEW_BROKER_STATS_DATA
(statsAll) and QUERY_TOPIC_CONSUME_BY_WHO count what was really sent and pulled."""

from __future__ import annotations

import anyio

from codec import jsonbody
from codec.codes import RequestCode, ResponseCode
from codec.command import request
from codec.frame import encode_frame


async def test_counts_follow_sends_and_pulls(bc) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        await bc.send_ok("StatsT", f"m{i}".encode())
    pulled = await bc.pull("StatsT", 0, 0, group="stats-g", max_nums=3)
    assert pulled.code == ResponseCode.SUCCESS

    info = jsonbody.loads((await bc.invoke(RequestCode.GET_BROKER_RUNTIME_INFO)).body)["table"]
    assert info["msgPutTotalTodayNow"] == "5" and info["msgGetTotalTodayNow"] == "3"
    assert float(info["putTps"].split()[0]) > 0 and info["getTransferedTps"] == info["getTransferredTps"]
    assert int(info["earliestMessageTimeStamp"]) > 0
    assert 0 < float(info["commitLogDiskRatio"]) < 1

    def stats(name: str, key: str):  # type: ignore[no-untyped-def]
        return bc.invoke(RequestCode.VIEW_BROKER_STATS_DATA, {"statsName": name, "statsKey": key})

    put = jsonbody.loads((await stats("TOPIC_PUT_NUMS", "StatsT")).body)
    assert put["statsMinute"]["sum"] == 5 and put["statsDay"]["sum"] == 5
    got = jsonbody.loads((await stats("GROUP_GET_NUMS", "StatsT@stats-g")).body)
    assert got["statsHour"]["sum"] == 3
    unknown = await stats("TOPIC_PUT_NUMS", "NoSuchTopic")
    assert unknown.code == ResponseCode.SYSTEM_ERROR and "NoSuchTopic" in (unknown.remark or "")

    who = await bc.invoke(RequestCode.QUERY_TOPIC_CONSUME_BY_WHO, {"topic": "StatsT"})
    assert jsonbody.loads(who.body)["groupList"] == ["stats-g"]


async def test_get_topic_config(bc) -> None:  # type: ignore[no-untyped-def]
    await bc.send_ok("ConfigT")
    answer = await bc.invoke(RequestCode.GET_TOPIC_CONFIG, {"topic": "ConfigT"})
    config = jsonbody.loads(answer.body)
    assert (config["topicName"], config["readQueueNums"], config["perm"]) == ("ConfigT", 4, 6)
    missing = await bc.invoke(RequestCode.GET_TOPIC_CONFIG, {"topic": "NoSuchTopic"})
    assert missing.code == ResponseCode.TOPIC_NOT_EXIST and missing.remark == "No topic in this broker."


async def test_broker_config_producers_and_clean_expired_cq(bc, broker) -> None:  # type: ignore[no-untyped-def]
    answer = await bc.invoke(RequestCode.GET_BROKER_CONFIG)
    lines = dict(line.split("=", 1) for line in answer.body.decode().splitlines())
    assert lines["brokerName"] == broker.config.broker_name and lines["listenPort"] == str(broker.config.port)
    assert lines["flushDiskType"] == "ASYNC_FLUSH" and lines["autoCreateTopicEnable"] == "true"
    assert "dataVersion" not in lines and jsonbody.loads(answer.ext_fields["version"])["counter"] >= 0
    # exportConfigs of the 4.9 tools reads these and fails on a missing one.
    assert lines["brokerId"] == "0" and lines["brokerRole"] == "ASYNC_MASTER" and lines["useTLS"] == "false"
    missing = await bc.invoke(RequestCode.GET_PRODUCER_CONNECTION_LIST, {"producerGroup": "nobody"})
    assert missing.code == ResponseCode.SYSTEM_ERROR and "nobody" in (missing.remark or "")
    assert (await bc.invoke(RequestCode.CLEAN_EXPIRED_CONSUMEQUEUE)).code == ResponseCode.SUCCESS


async def test_groups_that_only_consumed_have_default_configs(bc) -> None:  # type: ignore[no-untyped-def]
    """getConsumerConfig reads GET_ALL_SUBSCRIPTIONGROUP_CONFIG: a group known from its pulls and offsets is listed
    with Apache's defaults, as Apache auto-creates it."""
    await bc.send_ok("GroupsT")
    assert (await bc.pull("GroupsT", 0, 0, group="pulled-g", max_nums=1)).code == ResponseCode.SUCCESS
    ext = {"consumerGroup": "pulled-g", "topic": "GroupsT", "queueId": "0", "commitOffset": "1"}
    assert (await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, ext)).code == ResponseCode.SUCCESS
    listed = await bc.invoke(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)
    table = jsonbody.loads(listed.body)["subscriptionGroupTable"]
    assert table["pulled-g"]["retryMaxTimes"] == 16 and table["pulled-g"]["consumeEnable"] is True
    assert "never-seen-g" not in table


async def test_namesrv_config(ns_client, namesrv) -> None:  # type: ignore[no-untyped-def]
    answer = await ns_client.invoke(request(RequestCode.GET_NAMESRV_CONFIG, {}))
    lines = dict(line.split("=", 1) for line in answer.body.decode().splitlines())
    assert lines["listenPort"] == str(namesrv.port)


async def test_reset_offset_reaches_online_consumers(bc, open_broker_client, broker) -> None:  # type: ignore[no-untyped-def]
    for i in range(4):
        await bc.send_ok("ResetT", f"m{i}".encode(), queue_id=i % 2)
    fields = {"topic": "ResetT", "group": "reset-g", "timestamp": "-1", "isForce": "true"}
    unknown = await bc.invoke(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, fields)
    assert unknown.code == ResponseCode.SYSTEM_ERROR and "reset-g" in (unknown.remark or "")
    for queue_id in range(4):
        update = {"consumerGroup": "reset-g", "topic": "ResetT", "queueId": str(queue_id), "commitOffset": "0"}
        assert (await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, update)).code == 0
    offline = await bc.invoke(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, fields)
    assert offline.code == ResponseCode.CONSUMER_NOT_ONLINE and "Consumer not online" in (offline.remark or "")

    consumer = await open_broker_client(broker)
    assert (await consumer.heartbeat("consumer-1", "reset-g", {"ResetT": "*"})).code == 0
    answer = await bc.invoke(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, fields)
    assert answer.code == ResponseCode.SUCCESS, answer.remark
    table = answer.body.decode()
    assert '"queueId":0,"topic":"ResetT"}:2' in table and '"queueId":1,"topic":"ResetT"}:2' in table
    pushed = await consumer.client.receive(timeout=2)
    while pushed.code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED:  # sent as the consumer joined
        pushed = await consumer.client.receive(timeout=2)
    assert (pushed.code, pushed.is_oneway) == (RequestCode.RESET_CONSUMER_CLIENT_OFFSET, True)
    assert pushed.ext_fields["group"] == "reset-g" and pushed.body == answer.body


async def test_consumer_running_info_is_asked_of_the_consumer(bc, open_broker_client, broker) -> None:  # type: ignore[no-untyped-def]
    fields = {"consumerGroup": "info-g", "clientId": "consumer-9", "jstackEnable": "false"}
    offline = await bc.invoke(RequestCode.GET_CONSUMER_RUNNING_INFO, fields)
    assert offline.code == ResponseCode.SYSTEM_ERROR and "not online" in (offline.remark or "")
    consumer = await open_broker_client(broker)
    assert (await consumer.heartbeat("consumer-9", "info-g", {"InfoT": "*"})).code == 0
    answers = []
    async with anyio.create_task_group() as tg:

        async def ask() -> None:
            answers.append(await bc.invoke(RequestCode.GET_CONSUMER_RUNNING_INFO, fields))

        tg.start_soon(ask)
        asked = await consumer.client.receive(timeout=3)
        while asked.code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED:
            asked = await consumer.client.receive(timeout=3)
        assert asked.code == RequestCode.GET_CONSUMER_RUNNING_INFO and asked.ext_fields["clientId"] == "consumer-9"
        await consumer.client.stream.send(encode_frame(asked.response(ResponseCode.SUCCESS, body=b'{"properties":{}}')))
    assert answers[0].code == ResponseCode.SUCCESS and answers[0].body == b'{"properties":{}}'


async def test_ha_status_is_a_master_without_slaves(bc) -> None:  # type: ignore[no-untyped-def]
    await bc.send_ok("HaT")
    status = jsonbody.loads((await bc.invoke(RequestCode.GET_BROKER_HA_STATUS)).body)
    assert status["master"] is True and status["inSyncSlaveNums"] == 0 and status["masterCommitLogMaxOffset"] > 0


async def test_query_consume_queue(bc) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        await bc.send_ok("CqT", f"m{i}".encode())
    fields = {"topic": "CqT", "queueId": "0", "index": "1", "count": "5"}
    body = jsonbody.loads((await bc.invoke(RequestCode.QUERY_CONSUME_QUEUE, fields)).body)
    assert (body["minQueueIndex"], body["maxQueueIndex"]) == (0, 3)
    assert [e["physicSize"] > 0 for e in body["queueData"]] == [True, True]
    missing = await bc.invoke(RequestCode.QUERY_CONSUME_QUEUE, {**fields, "queueId": "9"})
    assert missing.code == ResponseCode.SYSTEM_ERROR and "9@CqT is not exist!" in (missing.remark or "")


async def test_update_broker_config_takes_effect_and_is_written_back(
    cluster, namesrv, open_broker_client, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "broker.conf"
    conf.write_text("# my broker\nbrokerName=broker-a\nautoCreateTopicEnable=true\n")
    broker = await cluster.start_broker(config_file=conf)
    bc = await open_broker_client(broker)
    body = b"autoCreateTopicEnable=false\nmaxMessageSize=1024\n"
    assert (await bc.invoke(RequestCode.UPDATE_BROKER_CONFIG, {}, body)).code == ResponseCode.SUCCESS
    assert broker.topics.auto_create is False and broker.config.max_message_size == 1024
    refused = await bc.send("NewTopicAfterUpdate")
    assert refused.code == ResponseCode.TOPIC_NOT_EXIST, "auto-creation is off now"
    too_big = await bc.send("TBW102", b"x" * 2000)
    assert too_big.code != ResponseCode.SUCCESS
    assert conf.read_text() == "# my broker\nbrokerName=broker-a\nautoCreateTopicEnable=false\nmaxMessageSize=1024\n"
    listed = await bc.invoke(RequestCode.GET_BROKER_CONFIG)
    assert "autoCreateTopicEnable=false" in listed.body.decode()
    assert jsonbody.loads(listed.ext_fields["version"])["counter"] == 1

    bad = await bc.invoke(RequestCode.UPDATE_BROKER_CONFIG, {}, b"brokerName=other\n")
    assert bad.code == ResponseCode.INVALID_PARAMETER and "brokerName" in (bad.remark or "")
    half = await bc.invoke(RequestCode.UPDATE_BROKER_CONFIG, {}, b"autoCreateTopicEnable=true\nmaxMessageSize=x\n")
    assert half.code == ResponseCode.INVALID_PARAMETER and "maxMessageSize" in (half.remark or "")
    assert broker.topics.auto_create is False, "nothing of a refused update is applied"

"""The name server over the wire: routes registered by a real broker (and by hand-made ones), cluster info,
topic list, KV config (routing.md sections 2-4 and 8, headers.md section 9)."""

from __future__ import annotations

import json

import pytest

from codec.codes import RequestCode, SerializeType
from codec.command import RemotingCommand, request

ROUTE = RequestCode.GET_ROUTEINFO_BY_TOPIC


def broker_data(addr: str, broker: str = "broker-a") -> str:
    return (f'{{"brokerAddrs":{{"0":"{addr}"}},"brokerName":"{broker}","cluster":"DefaultCluster",'
            '"enableActingMaster":false}')  # fmt: skip


def expected_route(addr: str, perm: int, queues: int, broker: str = "broker-a") -> bytes:
    queue_data = (f'{{"brokerName":"{broker}","perm":{perm},"readQueueNums":{queues},"topicSynFlag":0,'
                  f'"topicSysFlag":0,"writeQueueNums":{queues}}}')  # fmt: skip
    return (
        f'{{"brokerDatas":[{broker_data(addr, broker)}],"filterServerTable":{{}},"queueDatas":[{queue_data}]}}'.encode()
    )


async def get_route(client, call, topic: str) -> RemotingCommand:
    return await call(client, ROUTE, {"topic": topic})


@pytest.mark.parametrize(
    ("topic", "perm", "queues"),
    [("TBW102", 7, 8), ("DefaultCluster", 7, 16), ("broker-a", 7, 1), ("DefaultCluster_REPLY_TOPIC", 6, 1)],
)
async def test_broker_topics_are_routed_as_compact_standard_json(broker, ns_client, call, topic, perm, queues):
    response = await get_route(ns_client, call, topic)
    assert (response.code, response.remark, response.ext_fields) == (0, None, {})
    assert response.body == expected_route(broker.config.broker_addr, perm, queues)


async def test_unknown_topic(broker, ns_client, call):
    response = await get_route(ns_client, call, "NoSuchTopic")
    assert (response.code, response.remark, response.body) == (
        17, "No topic route info in name server for the topic: NoSuchTopic", b"")  # fmt: skip


async def test_cluster_info_and_topic_list(broker, ns_client, call):
    info = await call(ns_client, RequestCode.GET_BROKER_CLUSTER_INFO)
    addr = broker.config.broker_addr
    expected = (
        f'{{"brokerAddrTable":{{"broker-a":{broker_data(addr)}}},"clusterAddrTable":{{"DefaultCluster":["broker-a"]}}}}'
    )
    assert (info.code, info.body) == (0, expected.encode())

    topics = await call(ns_client, RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
    assert topics.code == 0
    assert json.loads(topics.body) == {
        "topicList": ["DefaultCluster", "DefaultCluster_REPLY_TOPIC", "TBW102", "broker-a"]
    }


async def test_kv_config_put_get_delete(namesrv, ns_client, call):
    key = {"namespace": "ORDER_TOPIC_CONFIG", "key": "TopicO"}
    missing = await call(ns_client, RequestCode.GET_KV_CONFIG, key)
    assert (missing.code, missing.remark) == (22, "No config item, Namespace: ORDER_TOPIC_CONFIG Key: TopicO")

    put = await call(ns_client, RequestCode.PUT_KV_CONFIG, {**key, "value": "broker-a:4"})
    assert (put.code, put.remark) == (0, None)
    got = await call(ns_client, RequestCode.GET_KV_CONFIG, key)
    assert (got.code, got.ext_fields) == (0, {"value": "broker-a:4"})
    overwritten = await call(ns_client, RequestCode.PUT_KV_CONFIG, {**key, "value": "broker-a:8"})
    assert overwritten.code == 0
    assert (await call(ns_client, RequestCode.GET_KV_CONFIG, key)).ext_fields == {"value": "broker-a:8"}

    no_value = await call(ns_client, RequestCode.PUT_KV_CONFIG, {"namespace": "ns", "key": "k"})
    assert no_value.code == 1
    assert "value" in no_value.remark

    deleted = await call(ns_client, RequestCode.DELETE_KV_CONFIG, key)
    assert deleted.code == 0
    assert (await call(ns_client, RequestCode.GET_KV_CONFIG, key)).code == 22
    assert (await call(ns_client, RequestCode.DELETE_KV_CONFIG, key)).code == 0  # deleting twice is fine


async def test_order_topic_config_goes_into_the_route(broker, ns_client, call):
    await call(ns_client, RequestCode.PUT_KV_CONFIG,
               {"namespace": "ORDER_TOPIC_CONFIG", "key": "TBW102", "value": "broker-a:8"})  # fmt: skip
    route = json.loads((await get_route(ns_client, call, "TBW102")).body)
    assert route["orderTopicConf"] == "broker-a:8"


@pytest.mark.parametrize("cluster_name", [None, "DefaultCluster"])
async def test_deleting_a_system_topics_route_is_accepted_and_the_next_registration_restores_it(
    broker, ns_client, call, cluster_name
):
    """As Apache's DefaultRequestProcessor.deleteTopicInNamesrv: no system-topic check on the name server (the
    broker refuses DELETE_TOPIC_IN_BROKER for it, so mqadmin deleteTopic stops there). The broker still has the
    topic, and its next registration routes it again (RouteInfoManager re-adds a topic missing from its table)."""
    ext = {"topic": "TBW102"} | ({"clusterName": cluster_name} if cluster_name else {})
    deleted = await call(ns_client, RequestCode.DELETE_TOPIC_IN_NAMESRV, ext)
    assert (deleted.code, deleted.remark) == (0, None)
    assert (await get_route(ns_client, call, "TBW102")).code == 17
    await broker.registrar.register_all()
    restored = await get_route(ns_client, call, "TBW102")
    assert (restored.code, restored.body) == (0, expected_route(broker.config.broker_addr, 7, 8))


# --- hand-made brokers ----------------------------------------------------------------------------------------


def register_header(addr: str, name: str = "broker-x", broker_id: int = 0) -> dict[str, str]:
    return {"brokerName": name, "brokerAddr": addr, "clusterName": "ClusterX", "haServerAddr": "",
            "brokerId": str(broker_id)}  # fmt: skip


def register_body(topics: dict[str, int]) -> bytes:
    table = {t: {"topicName": t, "readQueueNums": n, "writeQueueNums": n, "perm": 6, "topicSysFlag": 0}
             for t, n in topics.items()}  # fmt: skip
    return json.dumps({"filterServerList": [], "topicConfigSerializeWrapper": {"topicConfigTable": table}}).encode()


async def register(client, addr: str, topics: dict[str, int], **kw) -> RemotingCommand:
    return await client.invoke(request(RequestCode.REGISTER_BROKER, register_header(addr, **kw), register_body(topics)))


async def test_register_response(namesrv, ns_client):
    response = await register(ns_client, "10.0.0.9:10911", {"TopicX": 2})
    assert (response.code, response.ext_fields, response.body) == (
        0, {"haServerAddr": "", "masterAddr": ""}, b'{"table":{}}')  # fmt: skip


async def test_unregister_broker(namesrv, ns_client, cluster, call):
    await register(ns_client, "10.0.0.9:10911", {"TopicX": 2})
    probe = await cluster.connect(namesrv)
    assert (await get_route(probe, call, "TopicX")).body == expected_route("10.0.0.9:10911", 6, 2, "broker-x").replace(
        b"DefaultCluster", b"ClusterX")  # fmt: skip

    header = {k: v for k, v in register_header("10.0.0.9:10911").items() if k != "haServerAddr"}
    response = await call(ns_client, RequestCode.UNREGISTER_BROKER, header)
    assert (response.code, response.remark) == (0, None)
    assert (await get_route(probe, call, "TopicX")).code == 17
    info = await call(probe, RequestCode.GET_BROKER_CLUSTER_INFO)
    assert info.body == b'{"brokerAddrTable":{},"clusterAddrTable":{}}'


async def test_broker_dropped_when_its_connection_closes(namesrv, cluster, call, ns_client):
    fake = await cluster.connect(namesrv)
    await register(fake, "10.0.0.7:10911", {"TopicY": 4})
    assert (await get_route(ns_client, call, "TopicY")).code == 0
    await fake.aclose()
    for _ in range(100):
        if (await get_route(ns_client, call, "TopicY")).code == 17:
            break
    else:
        raise AssertionError("the broker's route outlived its connection")
    topics = json.loads((await call(ns_client, RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).body)
    assert topics == {"topicList": []}


async def test_real_broker_unregisters_when_stopped(cluster, namesrv, ns_client, call):
    broker = await cluster.start_broker()
    assert (await get_route(ns_client, call, "TBW102")).code == 0
    await cluster.stop(broker)
    assert (await get_route(ns_client, call, "TBW102")).code == 17


async def test_reregistration_updates_reported_topics_and_keeps_the_others(namesrv, ns_client, call):
    """As Apache's name server: a registration listing one new topic alone must not drop the broker's others."""
    await register(ns_client, "10.0.0.9:10911", {"TopicA": 2, "TopicB": 2})
    await register(ns_client, "10.0.0.9:10911", {"TopicB": 3})
    assert (await get_route(ns_client, call, "TopicA")).code == 0
    route = json.loads((await get_route(ns_client, call, "TopicB")).body)
    assert route["queueDatas"][0]["writeQueueNums"] == 3


async def test_unknown_request_code(namesrv, ns_client, call):
    response = await call(ns_client, 9999)
    assert (response.code, response.remark) == (3, " request type 9999 not supported")
    assert (await call(ns_client, RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).code == 0


async def test_binary_route_request_is_answered_in_binary(broker, ns_client):
    cmd = request(ROUTE, {"topic": "TBW102"})
    cmd.serialize_type = SerializeType.ROCKETMQ
    response = await ns_client.invoke(cmd)
    assert (response.serialize_type, response.code) == (SerializeType.ROCKETMQ, 0)
    assert response.body == expected_route(broker.config.broker_addr, 7, 8)
    cmd = request(ROUTE, {"topic": "Nope"})
    cmd.serialize_type = SerializeType.ROCKETMQ
    missing = await ns_client.invoke(cmd)
    assert (missing.serialize_type, missing.code) == (SerializeType.ROCKETMQ, 17)
    assert missing.remark == "No topic route info in name server for the topic: Nope"

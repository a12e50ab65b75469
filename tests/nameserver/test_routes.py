"""RouteTable unit tests: registration, liveness expiry with an injected clock, connection loss."""

from __future__ import annotations

from nameserver.routes import BROKER_EXPIRY_MS, RouteTable, TopicRegistration

A = "10.0.0.1:10911"
A_SLAVE = "10.0.0.2:10911"
B = "10.0.0.3:10911"


def topics(**queues: int) -> list[TopicRegistration]:
    return [TopicRegistration(name, n, n, 6) for name, n in queues.items()]


def register(table: RouteTable, addr: str, name: str, now_ms: int, broker_id: int = 0, **kw) -> None:
    table.register_broker(cluster="C", broker_name=name, broker_addr=addr, broker_id=broker_id,
                          topics=kw.pop("topics", topics(T=4)), now_ms=now_ms, **kw)  # fmt: skip


def test_expire_drops_brokers_silent_longer_than_their_timeout():
    table = RouteTable()
    register(table, A, "a", now_ms=1_000)
    register(table, B, "b", now_ms=50_000, timeout_ms=10_000)

    assert table.expire(60_000) == []  # exactly at B's timeout: still alive
    assert table.expire(60_001) == [B]  # its own, shorter timeout
    assert table.expire(1_000 + BROKER_EXPIRY_MS) == []
    assert [q["brokerName"] for q in table.route("T")["queueDatas"]] == ["a"]
    assert table.expire(1_000 + BROKER_EXPIRY_MS + 1) == [A]
    assert table.route("T") is None
    assert table.cluster_info() == {"brokerAddrTable": {}, "clusterAddrTable": {}}
    assert table.topic_list() == []


def test_reregistration_refreshes_liveness():
    table = RouteTable()
    register(table, A, "a", now_ms=0)
    register(table, A, "a", now_ms=100_000)
    assert table.expire(BROKER_EXPIRY_MS + 1) == []
    assert table.expire(100_000 + BROKER_EXPIRY_MS + 1) == [A]


def test_expired_slave_keeps_the_masters_queues():
    table = RouteTable()
    register(table, A, "a", now_ms=100_000)
    register(table, A_SLAVE, "a", now_ms=0, broker_id=1)
    assert table.route("T")["brokerDatas"][0]["brokerAddrs"] == {"0": A, "1": A_SLAVE}

    assert table.expire(BROKER_EXPIRY_MS + 1) == [A_SLAVE]
    route = table.route("T")
    assert route["brokerDatas"][0]["brokerAddrs"] == {"0": A}
    assert route["queueDatas"][0]["readQueueNums"] == 4


def test_connection_closed_drops_only_that_connections_brokers():
    table = RouteTable()
    register(table, A, "a", now_ms=0, connection_id=1)
    register(table, B, "b", now_ms=0, connection_id=2, topics=topics(T=2, U=1))
    assert table.connection_closed(2) == [B]
    assert table.topic_list() == ["T"]
    assert table.connection_closed(2) == []
    assert table.cluster_info()["clusterAddrTable"] == {"C": ["a"]}


def test_route_shape():
    table = RouteTable()
    register(table, B, "b", now_ms=0, topics=topics(T=2))
    register(table, A, "a", now_ms=0)
    assert table.route("T") == {
        "brokerDatas": [
            {"brokerAddrs": {"0": A}, "brokerName": "a", "cluster": "C", "enableActingMaster": False},
            {"brokerAddrs": {"0": B}, "brokerName": "b", "cluster": "C", "enableActingMaster": False},
        ],
        "filterServerTable": {},
        "queueDatas": [
            {"brokerName": "a", "perm": 6, "readQueueNums": 4, "topicSynFlag": 0, "topicSysFlag": 0,
             "writeQueueNums": 4},
            {"brokerName": "b", "perm": 6, "readQueueNums": 2, "topicSynFlag": 0, "topicSysFlag": 0,
             "writeQueueNums": 2},
        ],
    }  # fmt: skip
    assert table.route("Missing") is None


def test_delete_topic_per_cluster():
    table = RouteTable()
    register(table, A, "a", now_ms=0)
    table.delete_topic("T", "OtherCluster")
    assert table.route("T") is not None
    table.delete_topic("T", "C")
    assert table.route("T") is None


def test_write_perm_wiped_and_added_back_outlives_registrations():
    table = RouteTable()
    register(table, A, "a", now_ms=1_000, topics=topics(T=4, U=2))
    register(table, B, "b", now_ms=1_000)
    assert table.set_write_perm("a", writable=False) == 2
    register(table, A, "a", now_ms=2_000, topics=topics(T=4, U=2))  # the next registration keeps it wiped
    perms = {(q["brokerName"]): q["perm"] for q in table.route("T")["queueDatas"]}
    assert perms == {"a": 4, "b": 6}
    assert table.set_write_perm("a", writable=True) == 2
    register(table, A, "a", now_ms=3_000, topics=topics(T=4, U=2))
    assert {q["perm"] for q in table.route("U")["queueDatas"]} == {6}

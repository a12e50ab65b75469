"""/metrics on the broker's HTTP port: rocketmq-exporter's names with real values, and a port that refuses what
is not a short HTTP request."""

from __future__ import annotations

import socket

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from codec import jsonbody
from codec.codes import RequestCode

pytestmark = pytest.mark.timeout(30)


def _get(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_metrics_count_what_was_sent_and_consumed(http_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    bc = await open_broker_client(http_broker)
    for i in range(5):
        await bc.send_ok("MetricsT", f"m{i}".encode())
    update = {"consumerGroup": "metrics-g", "topic": "MetricsT", "queueId": "0", "commitOffset": "2"}
    assert (await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, update)).code == 0
    answer = await anyio.to_thread.run_sync(_get, http_broker.http_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"text/plain; version=0.0.4" in head
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    base = (("broker", "broker-a"), ("cluster", "DefaultCluster"))
    assert samples[("rocketmq_producer_offset", (*base, ("topic", "MetricsT")))] == 5
    assert samples[("rocketmq_producer_tps", (*base, ("topic", "MetricsT")))] > 0
    lag_key = ("rocketmq_group_diff", (*base, ("group", "metrics-g"), ("topic", "MetricsT")))
    assert samples[lag_key] == 5 - 2
    assert samples[("rocketmq_brokeruntime_msg_put_total_today_now", base)] == 5
    assert samples[("pocketmq_store_bytes", base)] > 0
    assert samples[("pocketmq_connections", base)] >= 1


async def test_the_http_port_refuses_what_it_does_not_serve(http_broker) -> None:  # type: ignore[no-untyped-def]
    port = http_broker.http_port
    assert (await anyio.to_thread.run_sync(_get, port, b"GET /nothing HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
    assert (await anyio.to_thread.run_sync(_get, port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
    assert (await anyio.to_thread.run_sync(_get, port, b"\x16\x03\x01 garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")
    huge = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000
    assert (await anyio.to_thread.run_sync(_get, port, huge)).startswith(b"HTTP/1.1 431")


async def test_the_json_admin_api(http_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    bc = await open_broker_client(http_broker)
    for i in range(3):
        await bc.send_ok("ApiT", f"m{i}".encode(), queue_id=1)
    update = {"consumerGroup": "api-g", "topic": "ApiT", "queueId": "1", "commitOffset": "1"}
    assert (await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, update)).code == 0
    assert (await bc.heartbeat("client-7", "api-g", {"ApiT": "*"})).code == 0

    def get(path: str):  # type: ignore[no-untyped-def]
        raw = _get(http_broker.http_port, f"GET {path} HTTP/1.1\r\n\r\n".encode())
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"application/json" in head, head
        return jsonbody.loads(body)

    broker = await anyio.to_thread.run_sync(get, "/api/broker")
    assert broker["brokerName"] == "broker-a" and broker["msgPutTotalTodayNow"] == 3
    [topic] = [t for t in await anyio.to_thread.run_sync(get, "/api/topics") if t["topic"] == "ApiT"]
    assert topic["messages"] == 3 and topic["queues"][1] == {"queueId": 1, "minOffset": 0, "maxOffset": 3}
    [group] = [g for g in await anyio.to_thread.run_sync(get, "/api/groups") if g["group"] == "api-g"]
    assert group["clients"] == ["client-7"] and group["topics"][0]["lag"] == 2
    connections = await anyio.to_thread.run_sync(get, "/api/connections")
    assert {(c["role"], c["clientId"]) for c in connections["remoting"]} == {("consumer", "client-7")}

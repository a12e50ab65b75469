"""The JSON admin actions on the HTTP port against a running broker: topics, offsets, messages (browse, find,
send, resend) and what waits, each with its refusals. Messages are sent over the remoting protocol first."""

from __future__ import annotations

import base64
import socket
from typing import Any

import anyio
import pytest

from codec import jsonbody
from codec.codes import RequestCode

pytestmark = pytest.mark.timeout(60)


def _exchange(port: int, raw: bytes) -> tuple[int, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), jsonbody.loads(body)


class Api:
    def __init__(self, port: int) -> None:
        self.port = port

    async def get(self, path: str, expect: int = 200) -> Any:
        status, value = await anyio.to_thread.run_sync(_exchange, self.port, f"GET {path} HTTP/1.1\r\n\r\n".encode())
        assert status == expect, value
        return value

    async def post(self, path: str, fields: dict[str, Any], expect: int = 200) -> Any:
        body = jsonbody.dumps(fields)
        raw = (
            f"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        status, value = await anyio.to_thread.run_sync(_exchange, self.port, raw)
        assert status == expect, value
        return value


@pytest.fixture
def api(http_broker) -> Api:  # type: ignore[no-untyped-def]
    return Api(http_broker.http_port)


async def test_create_update_and_delete_a_topic(api: Api, http_broker) -> None:  # type: ignore[no-untyped-def]
    made = await api.post("/api/topics/create", {"topic": "ApiMade", "readQueueNums": 2, "writeQueueNums": 2,
                                                 "messageType": "FIFO"})  # fmt: skip
    assert made["writeQueueNums"] == 2 and made["attributes"] == {"message.type": "FIFO"}
    cfg = http_broker.topics.get("ApiMade")
    assert (cfg.read_queue_nums, cfg.perm, cfg.attributes) == (2, 6, {"message.type": "FIFO"})
    await api.post("/api/topics/create", {"topic": "ApiMade", "readQueueNums": 3, "writeQueueNums": 3, "perm": 4})
    assert http_broker.topics.get("ApiMade").perm == 4
    assert http_broker.topics.get("ApiMade").attributes == {"message.type": "FIFO"}  # kept, as the remoting path
    [row] = [t for t in await api.get("/api/topics") if t["topic"] == "ApiMade"]
    assert len(row["queues"]) == 3 and row["system"] is False
    assert await api.post("/api/topics/delete", {"topic": "ApiMade"}) == {"deleted": "ApiMade"}
    assert http_broker.topics.get("ApiMade") is None
    refused = await api.post("/api/topics/delete", {"topic": "ApiMade"}, expect=404)
    assert "no topic ApiMade" in refused["error"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"topic": "bad topic!"}, "illegal characters"),
        ({"topic": "x" * 200}, "longer than"),
        ({"topic": "TBW102"}, "conflict with system topic"),
        ({"topic": "Ok", "perm": 9}, "perm must be 0..7"),
        ({"topic": "Ok", "readQueueNums": 0}, "readQueueNums must be 1..1024"),
        ({"topic": "Ok", "writeQueueNums": "many"}, "whole number"),
        ({"topic": "Ok", "messageType": "SPECIAL"}, "messageType must be one of"),
        ({"readQueueNums": 1}, "topic is required"),
        ({"topic": ["Ok"]}, "topic must be a string"),
    ],
)
async def test_a_bad_topic_is_refused_with_a_reason(api: Api, fields: dict[str, Any], says: str) -> None:
    assert says in (await api.post("/api/topics/create", fields, expect=400))["error"]


async def test_send_browse_find_and_resend(api: Api, http_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    bc = await open_broker_client(http_broker)
    hostile = b"<img src=x onerror=alert(1)> \xff\xfe not utf-8"
    await bc.send_ok("ApiMsgs", hostile, queue_id=0, properties={"KEYS": "order-1", "TAGS": "red", "color": "blue"})
    fields = {"topic": "ApiMsgs", "body": "héllo from http", "tags": "green", "keys": "order-2 extra"}
    sent = await api.post("/api/messages/send", {**fields, "properties": {"who": "console"}})
    assert sent["topic"] == "ApiMsgs" and sent["msgId"] and sent["uniqKey"]

    page = await api.get(f"/api/messages?topic=ApiMsgs&queueId={sent['queueId']}&offset={sent['queueOffset']}")
    [mine] = page["messages"]
    assert (mine["bodyText"], mine["tags"], mine["keys"]) == ("héllo from http", "green", ["order-2", "extra"])
    assert mine["properties"]["who"] == "console" and mine["msgId"] == sent["msgId"]
    assert mine["bornHost"].startswith("127.0.0.1:")

    [first] = (await api.get("/api/messages?topic=ApiMsgs&queueId=0&offset=0&count=1"))["messages"]
    assert first["bodyText"] == hostile.decode("utf-8", "replace")
    assert base64.b64decode(first["bodyBase64"]) == hostile
    assert first["properties"]["color"] == "blue"

    [by_key] = (await api.get("/api/messages/by-key?topic=ApiMsgs&key=order-1"))["messages"]
    assert by_key["msgId"] == first["msgId"]
    [by_offset_id] = (await api.get(f"/api/messages/by-id?id={first['msgId']}"))["messages"]
    assert by_offset_id["queueOffset"] == 0
    [by_uniq] = (await api.get(f"/api/messages/by-id?id={sent['uniqKey']}"))["messages"]
    assert by_uniq["msgId"] == sent["msgId"]
    await api.get("/api/messages/by-id?id=0123456789ABCDEF0123456789ABCDEF", expect=404)

    before = sum(t["messages"] for t in await api.get("/api/topics") if t["topic"] == "ApiMsgs")
    again = await api.post("/api/messages/resend", {"msgId": first["msgId"]})
    assert again["topic"] == "ApiMsgs" and again["msgId"] != first["msgId"]
    assert sum(t["messages"] for t in await api.get("/api/topics") if t["topic"] == "ApiMsgs") == before + 1
    retried = await api.post("/api/messages/resend", {"msgId": first["msgId"], "group": "api-g"})
    assert retried["topic"] == "%RETRY%api-g"
    [copy] = (await api.get(f"/api/messages/by-id?id={retried['msgId']}"))["messages"]
    assert copy["properties"]["RETRY_TOPIC"] == "ApiMsgs" and base64.b64decode(copy["bodyBase64"]) == hostile


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/messages?topic=Nope&offset=0", 404, "no topic Nope"),
        ("/api/messages?topic=ApiBad", 400, "offset is required"),
        ("/api/messages?topic=ApiBad&offset=-1", 400, "offset must be"),
        ("/api/messages?topic=ApiBad&offset=0&count=500", 400, "count must be 1..32"),
        ("/api/messages/by-key?topic=ApiBad", 400, "key is required"),
        ("/api/messages/by-id", 400, "id is required"),
    ],
)
async def test_bad_lookups_are_refused(api: Api, http_broker, open_broker_client, path: str, status: int,  # type: ignore[no-untyped-def]
                                       says: str) -> None:  # fmt: skip
    await (await open_broker_client(http_broker)).send_ok("ApiBad", b"x")
    assert says in (await api.get(path, expect=status))["error"]


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"topic": "ApiSend"}, 400, "body is required"),
        ({"topic": "ApiSend", "body": "x", "delayLevel": 99}, 400, "delayLevel must be 0 (none) to 18"),
        ({"topic": "ApiSend", "body": "x", "properties": {"a": 1}}, 400, "string values"),
        ({"topic": "ApiSend", "body": "x", "properties": {"a\x01": "b"}}, 400, "\\x01"),
        ({"topic": "bad topic", "body": "x"}, 400, "illegal characters"),
        ({"topic": "ApiSend", "body": "x", "keys": [1]}, 400, "keys must be"),
    ],
)
async def test_a_bad_send_is_refused(api: Api, fields: dict[str, Any], status: int, says: str) -> None:
    assert says in (await api.post("/api/messages/send", fields, expect=status))["error"]


async def test_reset_to_a_time_and_skip_reach_the_store_and_online_consumers(  # type: ignore[no-untyped-def]
    api: Api, http_broker, open_broker_client
) -> None:
    bc = await open_broker_client(http_broker)
    await api.post("/api/topics/create", {"topic": "ApiReset", "readQueueNums": 1, "writeQueueNums": 1})
    for i in range(4):
        await bc.send_ok("ApiReset", f"m{i}".encode(), queue_id=0)
    update = {"consumerGroup": "reset-g", "topic": "ApiReset", "queueId": "0", "commitOffset": "1"}
    assert (await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, update)).code == 0
    consumer = await open_broker_client(http_broker)
    assert (await consumer.heartbeat("reset-client", "reset-g", {"ApiReset": "*"})).code == 0

    skipped = await api.post("/api/groups/reset-offset", {"group": "reset-g", "topic": "ApiReset", "skip": True})
    assert skipped == {"offsets": [{"queueId": 0, "offset": 4}], "consumersTold": 1}
    pushed = await consumer.client.receive()
    while pushed.code == RequestCode.NOTIFY_CONSUMER_IDS_CHANGED:  # sent to the group on the heartbeat
        pushed = await consumer.client.receive()
    assert pushed.code == RequestCode.RESET_CONSUMER_CLIENT_OFFSET and pushed.ext_fields["group"] == "reset-g"
    assert http_broker.store.get_consumer_offset("reset-g", "ApiReset", 0) == 4
    [group] = [g for g in await api.get("/api/groups") if g["group"] == "reset-g"]
    assert group["topics"][0]["lag"] == 0

    back = await api.post("/api/groups/reset-offset", {"group": "reset-g", "topic": "ApiReset", "timestamp": 0})
    assert back["offsets"] == [{"queueId": 0, "offset": 0}]
    assert http_broker.store.get_consumer_offset("reset-g", "ApiReset", 0) == 0

    refused = await api.post("/api/groups/reset-offset", {"group": "reset-g", "topic": "Nope", "skip": True}, 404)
    assert "no topic in this broker" in refused["error"]
    refused = await api.post("/api/groups/reset-offset", {"group": "nobody", "topic": "ApiReset", "skip": True}, 400)
    assert "the group nobody has no committed offset on queue 0 of ApiReset" in refused["error"]
    refused = await api.post("/api/groups/reset-offset", {"group": "reset-g", "topic": "ApiReset"}, 400)
    assert "timestamp is required" in refused["error"]


async def test_pending_delayed_and_half_messages(api: Api, http_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    bc = await open_broker_client(http_broker)
    delayed = await api.post("/api/messages/send", {"topic": "ApiLater", "body": "later", "delayLevel": 4,
                                                    "keys": ["late-1"]})  # fmt: skip
    await bc.send_ok("ApiTx", b"half", properties={"TRAN_MSG": "true", "PGROUP": "tx-pg"})
    pending = await api.get("/api/pending")
    [waiting] = pending["delayed"]["messages"]
    assert pending["delayed"]["total"] == 1 and waiting["realTopic"] == "ApiLater" and waiting["delayLevel"] == 4
    assert waiting["keys"] == ["late-1"] and waiting["dueTimestamp"] > waiting["storeTimestamp"]
    assert waiting["uniqKey"] == delayed["uniqKey"]
    [half] = pending["half"]["messages"]
    assert (half["producerGroup"], half["realTopic"], half["bodyText"]) == ("tx-pg", "ApiTx", "half")
    broker = await api.get("/api/broker")
    assert broker["scheduledMessages"] == 1 and broker["pendingHalfMessages"] == 1 and broker["storeBytes"] > 0
    assert len(broker["delayLevels"]) == 18


async def test_the_console_is_served_with_a_strict_content_security_policy(api: Api) -> None:
    def fetch(path: str) -> bytes:
        with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\n\r\n".encode())
            return b"".join(iter(lambda: s.recv(65536), b""))

    page = await anyio.to_thread.run_sync(fetch, "/")
    assert page.startswith(b"HTTP/1.1 200") and b"text/html" in page and b'<script src="/console.js"' in page
    assert b"Content-Security-Policy: default-src 'none'; script-src 'self'" in page
    for path in ("/console.js", "/console.css"):
        assert (await anyio.to_thread.run_sync(fetch, path)).startswith(b"HTTP/1.1 200")

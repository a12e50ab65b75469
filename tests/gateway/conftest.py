"""Broker test helpers: a wire client that builds send/pull/heartbeat requests the way stock clients do.

Exposed through fixtures because test modules are not importable from each other (importlib import mode).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from codec.codes import PullSysFlag, RequestCode
from codec.command import RemotingCommand, request
from codec.properties import encode_properties
from codec.record import StoredMessage, decode_records
from gateway.broker import Broker
from remoting.client import RemotingClient

V1_SEND_KEYS = {
    "a": "producerGroup",
    "b": "topic",
    "c": "defaultTopic",
    "d": "defaultTopicQueueNums",
    "e": "queueId",
    "f": "sysFlag",
    "g": "bornTimestamp",
    "h": "flag",
    "i": "properties",
    "j": "reconsumeTimes",
    "k": "unitMode",
    "m": "batch",
}


def send_fields(
    topic: str,
    *,
    queue_id: int = 0,
    properties: str | dict[str, str] = "",
    flag: int = 0,
    sys_flag: int = 0,
    batch: bool = False,
    queue_nums: int = 4,
    v2: bool = True,
) -> dict[str, str]:
    """A send header as a Java producer writes it: single letters for V2/batch, long names for V1."""
    props = encode_properties(properties) if isinstance(properties, dict) else properties
    letters = {
        "a": "pg",
        "b": topic,
        "c": "TBW102",
        "d": str(queue_nums),
        "e": str(queue_id),
        "f": str(sys_flag),
        "g": str(int(time.time() * 1000)),
        "h": str(flag),
        "i": props,
        "j": "0",
        "k": "false",
        "m": "true" if batch else "false",
    }
    return letters if v2 else {V1_SEND_KEYS[k]: v for k, v in letters.items()}


def raw_frame(header: bytes, body: bytes = b"", serialize_type: int = 0) -> bytes:
    """A frame built by hand (for headers RemotingCommand cannot express, or broken ones)."""
    return struct.pack(">iI", 4 + len(header) + len(body), (serialize_type << 24) | len(header)) + header + body


def json_header(code: int, ext: dict[str, Any], *, opaque: int, language: str = "JAVA", version: int = 479) -> bytes:
    obj = {"code": code, "extFields": ext, "flag": 0, "language": language, "opaque": opaque, "remark": "",
           "serializeTypeCurrentRPC": "JSON", "version": version}  # fmt: skip
    return json.dumps(obj, separators=(",", ":")).encode()


class BrokerClient:
    """One connection to the broker with request builders for the commands under test."""

    def __init__(self, client: RemotingClient, broker: Broker) -> None:
        self.client = client
        self.broker = broker

    async def invoke(
        self, code: int, ext: dict[str, str] | None = None, body: bytes = b"", timeout: float = 3.0
    ) -> RemotingCommand:
        return await self.client.invoke(request(code, ext, body), timeout=timeout)

    async def send(
        self, topic: str, body: bytes = b"hello", *, code: int = RequestCode.SEND_MESSAGE_V2, **fields: Any
    ) -> RemotingCommand:
        v2 = code != RequestCode.SEND_MESSAGE
        return await self.invoke(code, send_fields(topic, v2=v2, **fields), body)

    async def send_ok(self, topic: str, body: bytes = b"hello", **fields: Any) -> RemotingCommand:
        response = await self.send(topic, body, **fields)
        assert response.code == 0, (response.code, response.remark)
        return response

    async def pull(
        self,
        topic: str,
        queue_id: int = 0,
        offset: int = 0,
        *,
        group: str = "cg",
        max_nums: int = 32,
        sys_flag: int = 0,
        subscription: str | None = None,
        commit_offset: int = 0,
        suspend_ms: int = 15000,
        timeout: float = 3.0,
    ) -> RemotingCommand:
        if subscription is not None:
            sys_flag |= PullSysFlag.SUBSCRIPTION
        ext = {
            "consumerGroup": group,
            "topic": topic,
            "queueId": str(queue_id),
            "queueOffset": str(offset),
            "maxMsgNums": str(max_nums),
            "sysFlag": str(int(sys_flag)),
            "commitOffset": str(commit_offset),
            "suspendTimeoutMillis": str(suspend_ms),
            "subscription": subscription if subscription is not None else "",
            "subVersion": "0",
            "expressionType": "TAG",
        }
        return await self.invoke(RequestCode.PULL_MESSAGE, ext, timeout=timeout)

    async def pull_records(self, topic: str, queue_id: int = 0, offset: int = 0, **kw: Any) -> list[StoredMessage]:
        response = await self.pull(topic, queue_id, offset, **kw)
        assert response.code == 0, (response.code, response.remark)
        return decode_records(response.body)

    async def heartbeat(
        self, client_id: str, group: str, subscriptions: dict[str, str], *, producer_group: str | None = None
    ) -> RemotingCommand:
        """A Java 4.9-style HEART_BEAT with a push consumer subscribed to ``{topic: expression}``."""
        body = java_heartbeat(client_id, group, subscriptions, producer_group)
        return await self.invoke(RequestCode.HEART_BEAT, body=body)

    async def max_offset(self, topic: str, queue_id: int = 0) -> int:
        response = await self.invoke(RequestCode.GET_MAX_OFFSET, {"topic": topic, "queueId": str(queue_id)})
        assert response.code == 0
        return int(response.ext_fields["offset"])


def java_heartbeat(
    client_id: str, group: str, subscriptions: dict[str, str], producer_group: str | None = None
) -> bytes:
    subs = []
    for topic, expr in subscriptions.items():
        tags = [] if expr == "*" else [t.strip() for t in expr.split("||")]
        subs.append({"classFilterMode": False, "codeSet": [], "expressionType": "TAG", "subString": expr,
                     "subVersion": 1700000000123, "tagsSet": tags, "topic": topic})  # fmt: skip
    consumer = {"consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "consumeType": "CONSUME_PASSIVELY",
                "groupName": group, "messageModel": "CLUSTERING", "subscriptionDataSet": subs,
                "unitMode": False}  # fmt: skip
    data = {
        "clientID": client_id,
        "consumerDataSet": [consumer] if group else [],
        "heartbeatFingerprint": 0,
        "producerDataSet": [{"groupName": producer_group}] if producer_group else [],
        "withoutSub": False,
    }
    return json.dumps(data, separators=(",", ":")).encode()


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> None:
    """Poll an async condition (e.g. a route registered in the background) until it holds."""
    with anyio.fail_after(timeout):
        while not await predicate():  # noqa: ASYNC110 - observed over the wire, no event to wait on
            await anyio.sleep(0.02)


@pytest.fixture
def open_broker_client(cluster: Any) -> Callable[[Broker], Awaitable[BrokerClient]]:
    async def open_(broker: Broker) -> BrokerClient:
        return BrokerClient(await cluster.connect(broker), broker)

    return open_


@pytest.fixture
async def bc(open_broker_client: Callable[[Broker], Awaitable[BrokerClient]], broker: Broker) -> BrokerClient:
    """A wire client on the default broker."""
    return await open_broker_client(broker)


@pytest.fixture
def wire() -> Any:
    """Module-level helpers of this conftest (frames, headers, heartbeat bodies, polling)."""

    class Wire:
        send_fields = staticmethod(send_fields)
        raw_frame = staticmethod(raw_frame)
        json_header = staticmethod(json_header)
        java_heartbeat = staticmethod(java_heartbeat)
        wait_until = staticmethod(wait_until)

    return Wire


@pytest.fixture
async def http_broker(cluster: Any, namesrv: Any) -> Broker:
    """A broker with its HTTP port (metrics, admin API, console) on a free port."""
    broker = await cluster.start_broker(http_port=0)
    with anyio.fail_after(10):
        await broker.http_settled.wait()
    assert broker.http_port
    return broker

"""The producer scenarios every 5.x gRPC client driver runs against ``pocketmq up`` (test_python5/java5/go5/node5).

Each client's test module keeps its own fixtures and test names (the conformance report maps them); the bodies
live here. What a client sent is read back over remoting (PULL_MESSAGE), which also proves one store for both
protocols. A client is anything with the drivers' ``produce(endpoints, topic, messages, ...)``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import anyio

from codec.codes import PROPERTY_KEYS, PROPERTY_SHARDING_KEY, PROPERTY_TAGS, PROPERTY_UNIQ_KEY, RequestCode
from codec.command import request
from codec.properties import decode_properties
from codec.record import StoredMessage, decode_records
from compat_tests import harness
from compat_tests.python5_driver import CHECK_PROPERTY, Message, ProduceResult
from remoting.client import RemotingClient


class Producer(Protocol):
    def produce(self, endpoints: str, topic: str, messages: list[Message], **kw: Any) -> ProduceResult: ...


def serve(data_dir: Path) -> Iterator[harness.PocketMQ]:
    """A ``pocketmq up`` whose gRPC port accepts connections (for a module-scoped fixture)."""
    server = harness.PocketMQ(data_dir=data_dir)
    server.start()
    try:
        wait_for_port(server.grpc_port)
        yield server
    finally:
        server.stop()


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def pulled(server: harness.PocketMQ, topic: str, queues: int = 8) -> list[StoredMessage]:
    """Every message of ``topic`` as a remoting consumer pulls it, queue by queue."""

    async def pull_all() -> list[StoredMessage]:
        out: list[StoredMessage] = []
        client = await RemotingClient.connect("127.0.0.1", server.broker_port)
        try:
            for queue_id in range(queues):
                ext = {
                    "consumerGroup": "grpc-check", "topic": topic, "queueId": str(queue_id), "queueOffset": "0",
                    "maxMsgNums": "64", "sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0",
                    "subscription": "*", "subVersion": "0",
                }  # fmt: skip
                response = await client.invoke(request(RequestCode.PULL_MESSAGE, ext))
                if response.code == 0:
                    out += decode_records(response.body)
        finally:
            await client.aclose()
        return out

    return anyio.run(pull_all)


def by_body(messages: list[StoredMessage]) -> dict[bytes, StoredMessage]:
    return {m.body: m for m in messages}


def normal_messages(prefix: str, who: str) -> list[Message]:
    return [
        Message(
            f"{prefix} {i} \u00e9\u4e2d".encode(),
            tag=f"Tag{i % 2}",
            keys=[f"key-{i}", "shared"],
            properties={"n": str(i), "who": who},
        )
        for i in range(5)
    ]


def check_stored(
    server: harness.PocketMQ, topic: str, messages: list[Message], sends: list[dict[str, Any]], *, offsets: bool = True
) -> None:
    """Each message stored intact: body, tag, keys (clients may reorder them), user properties, the message id
    the client reported as UNIQ_KEY, and (``offsets``: for a client whose send receipt has one) the offset it
    reported."""
    stored = by_body(pulled(server, topic))
    assert set(stored) == {m.body for m in messages}
    for message, sent in zip(messages, sends, strict=True):
        record = stored[message.body]
        props = decode_properties(record.properties)
        assert props[PROPERTY_TAGS] == message.tag
        assert sorted(props[PROPERTY_KEYS].split(" ")) == sorted(message.keys)
        assert {k: props.get(k) for k in message.properties} == message.properties
        assert props[PROPERTY_UNIQ_KEY] == sent["message_id"]
        # The receipt's queue is the one the client picked; the broker (as Apache's proxy) picks its own for a
        # normal message, and returns only the offset it stored at.
        if offsets:
            assert record.queue_offset == sent["offset"]


def normal_sends_stored_intact(server: harness.PocketMQ, client: Producer, topic: str, who: str) -> None:
    messages = normal_messages(topic, who)
    result = client.produce(server.grpc_endpoints, topic, messages)
    assert result.sent == 5 and result.failed == 0
    check_stored(server, topic, messages, result.sends)


def message_group_in_one_queue_in_order(server: harness.PocketMQ, client: Producer, topic: str) -> None:
    steps = ["create", "pay", "ship", "refund"]
    messages = [Message(f"order-9 {step}".encode(), tag=step, message_group="order-9") for step in steps]
    client.produce(server.grpc_endpoints, topic, messages, kind="fifo")
    stored = pulled(server, topic)
    assert [m.body for m in stored] == [m.body for m in messages]
    assert len({m.queue_id for m in stored}) == 1
    assert {decode_properties(m.properties)[PROPERTY_SHARDING_KEY] for m in stored} == {"order-9"}


def delivery_time_honoured(server: harness.PocketMQ, client: Producer, topic: str) -> None:
    result = client.produce(
        server.grpc_endpoints, topic, [Message(b"later", tag="D", delivery_delay_ms=3_000)], kind="delay"
    )
    [sent] = result.sends
    due_ms = sent["delivery_timestamp_ms"]
    assert not pulled(server, topic) or time.time() * 1000 >= due_ms, "pullable before its delivery time"
    seen_at = None
    deadline = time.time() + 20
    while time.time() < deadline:
        if pulled(server, topic):
            seen_at = time.time() * 1000
            break
        time.sleep(0.1)
    assert seen_at is not None, "the delayed message never became pullable"
    assert seen_at >= due_ms, f"pullable {due_ms - seen_at:.0f} ms before its delivery time"
    assert seen_at - due_ms < 3_000, f"pullable {seen_at - due_ms:.0f} ms after its delivery time"


def no_server_fails_at_startup(client: Producer, topic: str) -> ProduceResult:
    port = harness.free_port()
    result = client.produce(f"127.0.0.1:{port}", topic, [Message(b"nowhere")], check=False, timeout=120)
    assert result.sent == 0 and result.failed == 1
    return result


def transactions_commit_rollback_and_back_check(server: harness.PocketMQ, client: Producer, topic: str) -> None:
    """A committed half message is delivered, a rolled-back one never; one left open is checked over the client's
    Telemetry stream (RecoverOrphanedTransactionCommand), and the checker's COMMIT delivers it."""
    messages = [
        Message(b"tx commit", tag="C", end="commit"),
        Message(b"tx rollback", tag="R", end="rollback"),
        Message(b"tx checked", tag="K", end="none", properties={CHECK_PROPERTY: "COMMIT"}),
    ]
    started = time.time()
    result = client.produce(server.grpc_endpoints, topic, messages, kind="transaction", linger=25, timeout=120)
    assert result.sent == 3
    checked_id = result.sends[2]["message_id"]
    assert [c["resolution"] for c in result.checks if c.get("message_id") == checked_id][:1] == ["COMMIT"], (
        result.checks
    )
    stored = by_body(pulled(server, topic))
    assert set(stored) == {b"tx commit", b"tx checked"}
    assert decode_properties(stored[b"tx checked"].properties)[PROPERTY_UNIQ_KEY] == checked_id
    assert time.time() - started < 60

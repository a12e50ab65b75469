"""The official RocketMQ 5.x Python client (PyPI rocketmq-python-client, gRPC) producing to ``pocketmq up``.

The client runs unmodified, with its defaults (plaintext), or with TLS trusting the certificate pocketmq made in its
data directory. What it sent is read back over remoting (PULL_MESSAGE), so these tests also prove one store for
both protocols: bodies, tags, keys, user properties, message ids, a FIFO group's queue and order, a delivery time.
SimpleConsumer and PushConsumer need POP consumption, which is not built yet (docs/grpc.md).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from codec.codes import PROPERTY_KEYS, PROPERTY_SHARDING_KEY, PROPERTY_TAGS, PROPERTY_UNIQ_KEY, RequestCode
from codec.command import request
from codec.properties import decode_properties
from codec.record import StoredMessage, decode_records
from compat_tests import harness, python5_driver
from compat_tests.python5_driver import Message, Python5Client
from remoting.client import RemotingClient

pytestmark = [pytest.mark.compat]


@pytest.fixture(scope="module")
def install() -> python5_driver.Install:
    return python5_driver.install_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    server = harness.PocketMQ(data_dir=tmp_path_factory.mktemp("pocketmq-grpc") / "data")
    server.start()
    try:
        _wait_for_port(server.grpc_port)
        yield server
    finally:
        server.stop()


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def client(install: python5_driver.Install, tmp_path: Path) -> Iterator[Python5Client]:
    c = Python5Client(python=install.python, work_dir=tmp_path)
    try:
        yield c
    finally:
        c.close()


def pulled(server: harness.PocketMQ, topic: str, queues: int = 8) -> list[StoredMessage]:
    """Every message of ``topic`` as a remoting consumer pulls it, queue by queue."""

    async def pull_all() -> list[StoredMessage]:
        out: list[StoredMessage] = []
        client = await RemotingClient.connect("127.0.0.1", server.broker_port)
        try:
            for queue_id in range(queues):
                ext = {
                    "consumerGroup": "py5-check", "topic": topic, "queueId": str(queue_id), "queueOffset": "0",
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


def test_sends_with_the_default_settings_are_stored_intact(server: harness.PocketMQ, client: Python5Client) -> None:
    messages = [
        Message(f"normal {i}".encode(), tag=f"Tag{i % 2}", keys=[f"key-{i}", "shared"], properties={"n": str(i)})
        for i in range(5)
    ]
    result = client.produce(server.grpc_endpoints, "Py5Normal", messages)
    assert result.sent == 5 and result.failed == 0
    stored = by_body(pulled(server, "Py5Normal"))
    assert set(stored) == {m.body for m in messages}
    for message, sent in zip(messages, result.sends, strict=True):
        props = decode_properties(stored[message.body].properties)
        assert props[PROPERTY_TAGS] == message.tag
        assert sorted(props[PROPERTY_KEYS].split(" ")) == sorted(message.keys)  # the client keeps keys in a set
        assert props["n"] == message.properties["n"]
        assert props[PROPERTY_UNIQ_KEY] == sent["message_id"]
        assert stored[message.body].queue_offset == sent["offset"]


def test_tls_with_the_certificate_pocketmq_made(
    install: python5_driver.Install, server: harness.PocketMQ, tmp_path: Path
) -> None:
    cert = server.data_dir / "grpc-tls-cert.pem"
    assert cert.exists(), "the gRPC endpoint makes its certificate when it starts"
    client = Python5Client(python=install.python, work_dir=tmp_path, tls=True, ca_file=cert)
    try:
        result = client.produce(server.grpc_endpoints, "Py5Tls", [Message(b"over tls", tag="T")])
    finally:
        client.close()
    assert result.sent == 1
    [stored] = pulled(server, "Py5Tls")
    assert stored.body == b"over tls"


def test_a_message_group_is_stored_in_one_queue_in_send_order(server: harness.PocketMQ, client: Python5Client) -> None:
    steps = ["create", "pay", "ship", "refund"]
    messages = [Message(f"order-7 {step}".encode(), tag=step, message_group="order-7") for step in steps]
    client.produce(server.grpc_endpoints, "Py5Fifo", messages, kind="fifo")
    stored = pulled(server, "Py5Fifo")
    assert [m.body for m in stored] == [m.body for m in messages]
    assert len({m.queue_id for m in stored}) == 1
    assert {decode_properties(m.properties)[PROPERTY_SHARDING_KEY] for m in stored} == {"order-7"}


def test_a_delivery_time_holds_the_message_until_then(server: harness.PocketMQ, client: Python5Client) -> None:
    result = client.produce(
        server.grpc_endpoints, "Py5Delay", [Message(b"later", tag="D", delivery_delay_ms=3_000)], kind="delay"
    )
    [sent] = result.sends
    due_ms = sent["delivery_timestamp_ms"]
    seen_at = None
    deadline = time.time() + 20
    while time.time() < deadline:
        if pulled(server, "Py5Delay"):
            seen_at = time.time() * 1000
            break
        time.sleep(0.1)
    assert seen_at is not None, "the delayed message never became pullable"
    assert seen_at >= due_ms, f"pullable {due_ms - seen_at:.0f} ms before its delivery time"
    assert seen_at - due_ms < 3_000, f"pullable {seen_at - due_ms:.0f} ms after its delivery time"


def test_no_server_is_a_clean_error(client: Python5Client) -> None:
    port = harness.free_port()
    result = client.produce(f"127.0.0.1:{port}", "Py5None", [Message(b"nowhere")], check=False, timeout=120)
    assert result.sent == 0 and result.failed == 1
    assert "route" in result.errors()[0]["error"]


def test_transactions_commit_rollback_and_back_check(server: harness.PocketMQ, client: Python5Client) -> None:
    """A committed half message is delivered, a rolled-back one never; one left open is checked over the client's
    Telemetry stream (RecoverOrphanedTransactionCommand), and the checker's COMMIT delivers it."""
    messages = [
        Message(b"tx commit", tag="C", end="commit"),
        Message(b"tx rollback", tag="R", end="rollback"),
        Message(b"tx checked", tag="K", end="none", properties={python5_driver.CHECK_PROPERTY: "COMMIT"}),
    ]
    started = time.time()
    result = client.produce(server.grpc_endpoints, "Py5Tx", messages, kind="transaction", linger=25, timeout=120)
    assert result.sent == 3
    assert [c["resolution"] for c in result.checks if c.get("message_id") == result.sends[2]["message_id"]][:1] == [
        "COMMIT"
    ], result.checks
    stored = by_body(pulled(server, "Py5Tx"))
    assert set(stored) == {b"tx commit", b"tx checked"}
    assert decode_properties(stored[b"tx checked"].properties)[PROPERTY_UNIQ_KEY] == result.sends[2]["message_id"]
    assert time.time() - started < 60

"""The official RocketMQ 5.x Go client (github.com/apache/rocketmq-clients/golang/v5, gRPC) producing to
``pocketmq up``.

The client runs unmodified with its defaults: TLS on, with a tls.Config that skips verification, so it takes the
self-signed certificate pocketmq made; one test turns TLS off (the client's ``EnableSsl = false``) for the plaintext
path of the same port. What it sent is read back over remoting (PULL_MESSAGE), as in test_java5.py: bodies, tags,
keys, user properties, message ids, a FIFO group's queue and order, a delivery time, and transactions ended by the
producer or by its checker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codec.codes import PROPERTY_KEYS, PROPERTY_SHARDING_KEY, PROPERTY_TAGS, PROPERTY_UNIQ_KEY
from codec.properties import decode_properties
from compat_tests import go5_driver, harness
from compat_tests.go5_driver import Go5Client, Message
from compat_tests.test_python5 import _wait_for_port, by_body, pulled

pytestmark = [pytest.mark.compat]


@pytest.fixture(scope="module")
def build() -> go5_driver.Build:
    return go5_driver.build_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    server = harness.PocketMQ(data_dir=tmp_path_factory.mktemp("pocketmq-go5") / "data")
    server.start()
    try:
        _wait_for_port(server.grpc_port)
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(build: go5_driver.Build, tmp_path: Path) -> Iterator[Go5Client]:
    c = Go5Client(build=build, work_dir=tmp_path)
    try:
        yield c
    finally:
        c.close()


def _check_stored(server: harness.PocketMQ, topic: str, messages: list[Message], sends: list[dict]) -> None:
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
        assert record.queue_offset == sent["offset"]


def _normal_messages(prefix: str) -> list[Message]:
    return [
        Message(
            f"{prefix} {i} \u00e9\u4e2d".encode(),
            tag=f"Tag{i % 2}",
            keys=[f"key-{i}", "shared"],
            properties={"n": str(i), "who": "go5"},
        )
        for i in range(5)
    ]


def test_sends_with_the_default_settings_tls_are_stored_intact(server: harness.PocketMQ, client: Go5Client) -> None:
    messages = _normal_messages("tls")
    result = client.produce(server.grpc_endpoints, "G5Normal", messages)
    assert result.sent == 5 and result.failed == 0
    _check_stored(server, "G5Normal", messages, result.sends)


def test_plaintext_sends_are_stored_intact(build: go5_driver.Build, server: harness.PocketMQ, tmp_path: Path) -> None:
    client = Go5Client(build=build, work_dir=tmp_path, plaintext=True)
    try:
        messages = _normal_messages("plain")
        result = client.produce(server.grpc_endpoints, "G5Plain", messages)
    finally:
        client.close()
    assert result.sent == 5
    _check_stored(server, "G5Plain", messages, result.sends)


def test_a_message_group_is_stored_in_one_queue_in_send_order(server: harness.PocketMQ, client: Go5Client) -> None:
    steps = ["create", "pay", "ship", "refund"]
    messages = [Message(f"order-9 {step}".encode(), tag=step, message_group="order-9") for step in steps]
    client.produce(server.grpc_endpoints, "G5Fifo", messages, kind="fifo")
    stored = pulled(server, "G5Fifo")
    assert [m.body for m in stored] == [m.body for m in messages]
    assert len({m.queue_id for m in stored}) == 1
    assert {decode_properties(m.properties)[PROPERTY_SHARDING_KEY] for m in stored} == {"order-9"}


def test_a_delivery_timestamp_holds_the_message_until_then(server: harness.PocketMQ, client: Go5Client) -> None:
    result = client.produce(
        server.grpc_endpoints, "G5Delay", [Message(b"later", tag="D", delivery_delay_ms=3_000)], kind="delay"
    )
    [sent] = result.sends
    due_ms = sent["delivery_timestamp_ms"]
    assert not pulled(server, "G5Delay") or time.time() * 1000 >= due_ms, "pullable before its delivery time"
    seen_at = None
    deadline = time.time() + 20
    while time.time() < deadline:
        if pulled(server, "G5Delay"):
            seen_at = time.time() * 1000
            break
        time.sleep(0.1)
    assert seen_at is not None, "the delayed message never became pullable"
    assert seen_at >= due_ms, f"pullable {due_ms - seen_at:.0f} ms before its delivery time"
    assert seen_at - due_ms < 3_000, f"pullable {seen_at - due_ms:.0f} ms after its delivery time"


def test_no_server_is_a_clean_error(client: Go5Client) -> None:
    port = harness.free_port()
    result = client.produce(f"127.0.0.1:{port}", "G5None", [Message(b"nowhere")], check=False, timeout=120)
    assert result.sent == 0 and result.failed == 1
    assert result.errors()[0].get("stage") == "startup", result.errors()


def test_transactions_commit_rollback_and_back_check(server: harness.PocketMQ, client: Go5Client) -> None:
    """A committed half message is delivered, a rolled-back one never; one left open is checked over the client's
    Telemetry stream (RecoverOrphanedTransactionCommand), and the checker's COMMIT delivers it."""
    messages = [
        Message(b"tx commit", tag="C", end="commit"),
        Message(b"tx rollback", tag="R", end="rollback"),
        Message(b"tx checked", tag="K", end="none", properties={go5_driver.CHECK_PROPERTY: "COMMIT"}),
    ]
    started = time.time()
    result = client.produce(server.grpc_endpoints, "G5Tx", messages, kind="transaction", linger=25, timeout=120)
    assert result.sent == 3
    checked_id = result.sends[2]["message_id"]
    assert [c["resolution"] for c in result.checks if c.get("message_id") == checked_id][:1] == ["COMMIT"], (
        result.checks
    )
    stored = by_body(pulled(server, "G5Tx"))
    assert set(stored) == {b"tx commit", b"tx checked"}
    assert decode_properties(stored[b"tx checked"].properties)[PROPERTY_UNIQ_KEY] == checked_id
    assert time.time() - started < 60

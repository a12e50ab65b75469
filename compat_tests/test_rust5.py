"""The official RocketMQ 5.x Rust client (crates.io ``rocketmq``, gRPC) producing to and consuming from
``pocketmq up``.

The client runs unmodified with its defaults: plaintext (its ``ClientOption`` has TLS off). One test turns TLS on
and has it trust the self-signed certificate pocketmq made (``SSL_CERT_FILE``, which its root store honours), one
shows that without that it fails cleanly. What it sent is read back over remoting (PULL_MESSAGE), as in
test_go5.py: bodies, tags, keys, user properties, message ids (its send receipt has no offset), a FIFO group's queue
and order, a delivery time, and transactions ended by the producer or by its checker.
The consumer scenarios of compat_tests/grpc_consumer.py that a SimpleConsumer can run (the crate has no
PushConsumer and no recall) run as ``test_consumer_scenario[<name>]``, side by side once per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests import grpc_consumer, grpc_producer, harness, rust5_driver
from compat_tests.rust5_driver import Message, Rust5Client

pytestmark = [pytest.mark.compat]

# grpc_consumer.SCENARIOS without the PushConsumer ones and the recall one: rocketmq 5.0.0 has neither.
CONSUMER_SCENARIOS = [
    name
    for name in grpc_consumer.SCENARIOS
    if name not in {"push_retries_after_failure", "push_dead_letter_after_max_attempts", "delay_recalled_before_due"}
]


@pytest.fixture(scope="module")
def build() -> rust5_driver.Build:
    return rust5_driver.build_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    yield from grpc_producer.serve(tmp_path_factory.mktemp("pocketmq-rust5") / "data")


@pytest.fixture
def client(build: rust5_driver.Build, tmp_path: Path) -> Iterator[Rust5Client]:
    c = Rust5Client(build=build, work_dir=tmp_path)
    try:
        yield c
    finally:
        c.close()


def test_sends_with_the_default_settings_plaintext_are_stored_intact(
    server: harness.PocketMQ, client: Rust5Client
) -> None:
    messages = grpc_producer.normal_messages("plain", "rust5")
    result = client.produce(server.grpc_endpoints, "R5Plain", messages)
    assert result.sent == 5 and result.failed == 0
    assert all(s["offset"] is None and s["recall_handle"] is None for s in result.sends), result.sends
    grpc_producer.check_stored(server, "R5Plain", messages, result.sends, offsets=False)


def test_tls_sends_are_stored_intact(build: rust5_driver.Build, server: harness.PocketMQ, tmp_path: Path) -> None:
    client = Rust5Client(build=build, work_dir=tmp_path, tls=True, ca_file=server.data_dir / "grpc-tls-cert.pem")
    try:
        messages = grpc_producer.normal_messages("tls", "rust5")
        result = client.produce(server.grpc_endpoints, "R5Tls", messages)
    finally:
        client.close()
    assert result.sent == 5
    grpc_producer.check_stored(server, "R5Tls", messages, result.sends, offsets=False)


def test_tls_without_trusting_the_self_signed_certificate_is_a_clean_error(
    build: rust5_driver.Build, server: harness.PocketMQ, tmp_path: Path
) -> None:
    client = Rust5Client(build=build, work_dir=tmp_path, tls=True)
    try:
        result = client.produce(server.grpc_endpoints, "R5TlsUntrusted", [Message(b"x")], check=False)
    finally:
        client.close()
    assert result.sent == 0 and result.failed == 1
    assert result.errors()[0].get("stage") == "startup", result.errors()


def test_a_message_group_is_stored_in_one_queue_in_send_order(server: harness.PocketMQ, client: Rust5Client) -> None:
    grpc_producer.message_group_in_one_queue_in_order(server, client, "R5Fifo")


def test_a_delivery_timestamp_holds_the_message_until_then(server: harness.PocketMQ, client: Rust5Client) -> None:
    grpc_producer.delivery_time_honoured(server, client, "R5Delay")


def test_no_server_is_a_clean_error(client: Rust5Client) -> None:
    result = grpc_producer.no_server_fails_at_startup(client, "R5None")
    assert result.errors()[0].get("stage") == "startup", result.errors()


def test_transactions_commit_rollback_and_back_check(server: harness.PocketMQ, client: Rust5Client) -> None:
    grpc_producer.transactions_commit_rollback_and_back_check(server, client, "R5Tx")


def test_recall_and_push_consumer_are_reported_as_missing(server: harness.PocketMQ, client: Rust5Client) -> None:
    """The driver says so instead of pretending: a recall is refused before the send, push-consume fails at start."""
    message = Message(b"not sent", delivery_delay_ms=4000, recall=True)
    result = client.produce(server.grpc_endpoints, "R5Recall", [message], kind="delay", check=False)
    assert result.sent == 0 and "recall is not supported" in result.errors()[0]["error"], result.sends
    got = client.consume(server.grpc_endpoints, "R5Recall", "r5-push", expect=1, timeout=5, push=True)
    assert got.deliveries == [] and got.errors[0]["stage"] == "startup", got.errors
    assert "no PushConsumer" in got.errors[0]["error"], got.errors


@pytest.fixture(scope="module")
def consumer_results(
    build: rust5_driver.Build, server: harness.PocketMQ, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Any]:
    """The consumer scenarios of compat_tests/grpc_consumer.py that the client can run, side by side once."""
    work_dir = tmp_path_factory.mktemp("rust5-consumers")
    return grpc_consumer.run_all(server, Rust5Client(build=build, work_dir=work_dir), CONSUMER_SCENARIOS)


@pytest.mark.parametrize("scenario", CONSUMER_SCENARIOS)
def test_consumer_scenario(consumer_results: dict[tuple[str, str], Any], scenario: str) -> None:
    grpc_consumer.outcome_of(consumer_results, "pocketmq", scenario)

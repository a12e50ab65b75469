"""The official RocketMQ 5.x Node.js client (npm rocketmq-client-nodejs, gRPC): producing to and consuming from
``pocketmq up``.

The client runs unmodified with its defaults, which unlike the Java client's are plaintext (``sslEnabled`` false);
one test turns TLS on (``sslEnabled: true``) for the TLS path of the same port. The Node client has no "trust any
certificate" mode (it uses grpc-js ``createSsl()`` with the default roots), so that test makes grpc-js trust
pocketmq's self-signed certificate (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH), and another shows that, without it, TLS
startup fails cleanly on the untrusted certificate. What it sent is read back over remoting (PULL_MESSAGE), as in
test_java5.py: bodies, tags, keys, user properties, message ids, a FIFO group's queue and order, a delivery time,
and transactions ended by the producer or by its checker. Every scenario of test_java5.py is supported by the client.
The consumer scenarios of compat_tests/grpc_consumer.py (SimpleConsumer and PushConsumer over POP) run as
``test_consumer_scenario[<name>]``, side by side once per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests import grpc_consumer, grpc_producer, harness, node5_driver
from compat_tests.node5_driver import Message, Node5Client

pytestmark = [pytest.mark.compat]


@pytest.fixture(scope="module")
def install() -> node5_driver.Install:
    return node5_driver.install_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    yield from grpc_producer.serve(tmp_path_factory.mktemp("pocketmq-node5") / "data")


@pytest.fixture
def client(install: node5_driver.Install, tmp_path: Path) -> Iterator[Node5Client]:
    c = Node5Client(install=install, work_dir=tmp_path)
    try:
        yield c
    finally:
        c.close()


def test_sends_with_the_default_settings_plaintext_are_stored_intact(
    server: harness.PocketMQ, client: Node5Client
) -> None:
    messages = grpc_producer.normal_messages("plain", "node5")
    result = client.produce(server.grpc_endpoints, "N5Normal", messages)
    assert result.sent == 5 and result.failed == 0
    grpc_producer.check_stored(server, "N5Normal", messages, result.sends)


def test_tls_sends_are_stored_intact(install: node5_driver.Install, server: harness.PocketMQ, tmp_path: Path) -> None:
    client = Node5Client(install=install, work_dir=tmp_path, tls=True, ca_file=server.data_dir / "grpc-tls-cert.pem")
    try:
        messages = grpc_producer.normal_messages("tls", "node5")
        result = client.produce(server.grpc_endpoints, "N5Tls", messages)
    finally:
        client.close()
    assert result.sent == 5
    grpc_producer.check_stored(server, "N5Tls", messages, result.sends)


def test_tls_without_trusting_the_self_signed_certificate_is_a_clean_error(
    install: node5_driver.Install, server: harness.PocketMQ, tmp_path: Path
) -> None:
    client = Node5Client(install=install, work_dir=tmp_path, tls=True)
    try:
        result = client.produce(server.grpc_endpoints, "N5Untrusted", [Message(b"x")], check=False, timeout=120)
    finally:
        client.close()
    assert result.sent == 0 and result.failed == 1
    [error] = result.errors()
    assert error.get("stage") == "startup" and "self-signed certificate" in error["error"], error


def test_a_message_group_is_stored_in_one_queue_in_send_order(server: harness.PocketMQ, client: Node5Client) -> None:
    grpc_producer.message_group_in_one_queue_in_order(server, client, "N5Fifo")


def test_a_delivery_timestamp_holds_the_message_until_then(server: harness.PocketMQ, client: Node5Client) -> None:
    grpc_producer.delivery_time_honoured(server, client, "N5Delay")


def test_no_server_is_a_clean_error(client: Node5Client) -> None:
    result = grpc_producer.no_server_fails_at_startup(client, "N5None")
    assert result.errors()[0].get("stage") == "startup", result.errors()


def test_transactions_commit_rollback_and_back_check(server: harness.PocketMQ, client: Node5Client) -> None:
    grpc_producer.transactions_commit_rollback_and_back_check(server, client, "N5Tx")


@pytest.fixture(scope="module")
def consumer_results(
    install: node5_driver.Install, server: harness.PocketMQ, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Any]:
    """Every consumer scenario of compat_tests/grpc_consumer.py, run side by side once for the module."""
    work_dir = tmp_path_factory.mktemp("node5-consumers")
    return grpc_consumer.run_all(server, Node5Client(install=install, work_dir=work_dir))


@pytest.mark.parametrize("scenario", list(grpc_consumer.SCENARIOS))
def test_consumer_scenario(consumer_results: dict[tuple[str, str], Any], scenario: str) -> None:
    grpc_consumer.outcome_of(consumer_results, "pocketmq", scenario)

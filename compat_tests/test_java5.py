"""The official RocketMQ 5.x Java client (Maven rocketmq-client-java, gRPC): producing to and consuming from
``pocketmq up``.

The client runs unmodified with its defaults: TLS on, trusting any certificate, so it takes the self-signed one
pocketmq made; one test turns TLS off (``enableSsl(false)``) for the plaintext path of the same port. What it sent
is read back over remoting (PULL_MESSAGE), as in test_python5.py: bodies, tags, keys, user properties, message ids,
a FIFO group's queue and order, a delivery time, and transactions ended by the producer or by its checker.
The consumer scenarios of compat_tests/grpc_consumer.py (SimpleConsumer and PushConsumer over POP) run as
``test_consumer_scenario[<name>]``, side by side once per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests import grpc_consumer, grpc_producer, harness, java5_driver
from compat_tests.java5_driver import Java5Client

pytestmark = [pytest.mark.compat]


@pytest.fixture(scope="module")
def build() -> java5_driver.Build:
    return java5_driver.build_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    yield from grpc_producer.serve(tmp_path_factory.mktemp("pocketmq-java5") / "data")


@pytest.fixture
def client(java5: Java5Client) -> Java5Client:
    return java5


def test_sends_with_the_default_settings_tls_are_stored_intact(server: harness.PocketMQ, client: Java5Client) -> None:
    messages = grpc_producer.normal_messages("tls", "java5")
    result = client.produce(server.grpc_endpoints, "J5Normal", messages)
    assert result.sent == 5 and result.failed == 0
    grpc_producer.check_stored(server, "J5Normal", messages, result.sends)


def test_plaintext_sends_are_stored_intact(build: java5_driver.Build, server: harness.PocketMQ, tmp_path: Path) -> None:
    client = Java5Client(build=build, work_dir=tmp_path, plaintext=True)
    try:
        messages = grpc_producer.normal_messages("plain", "java5")
        result = client.produce(server.grpc_endpoints, "J5Plain", messages)
    finally:
        client.close()
    assert result.sent == 5
    grpc_producer.check_stored(server, "J5Plain", messages, result.sends)


def test_a_message_group_is_stored_in_one_queue_in_send_order(server: harness.PocketMQ, client: Java5Client) -> None:
    grpc_producer.message_group_in_one_queue_in_order(server, client, "J5Fifo")


def test_a_delivery_timestamp_holds_the_message_until_then(server: harness.PocketMQ, client: Java5Client) -> None:
    grpc_producer.delivery_time_honoured(server, client, "J5Delay")


def test_no_server_is_a_clean_error(client: Java5Client) -> None:
    result = grpc_producer.no_server_fails_at_startup(client, "J5None")
    assert result.errors()[0].get("stage") == "startup", result.errors()


def test_transactions_commit_rollback_and_back_check(server: harness.PocketMQ, client: Java5Client) -> None:
    grpc_producer.transactions_commit_rollback_and_back_check(server, client, "J5Tx")


@pytest.fixture(scope="module")
def consumer_results(
    build: java5_driver.Build, server: harness.PocketMQ, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Any]:
    """Every consumer scenario of compat_tests/grpc_consumer.py, run side by side once for the module."""
    work_dir = tmp_path_factory.mktemp("java5-consumers")
    return grpc_consumer.run_all(server, Java5Client(build=build, work_dir=work_dir))


@pytest.mark.parametrize("scenario", list(grpc_consumer.SCENARIOS))
def test_consumer_scenario(consumer_results: dict[tuple[str, str], Any], scenario: str) -> None:
    grpc_consumer.outcome_of(consumer_results, "pocketmq", scenario)

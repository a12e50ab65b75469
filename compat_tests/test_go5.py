"""The official RocketMQ 5.x Go client (github.com/apache/rocketmq-clients/golang/v5, gRPC) producing to and
consuming from ``pocketmq up``.

The client runs unmodified with its defaults: TLS on, with a tls.Config that skips verification, so it takes the
self-signed certificate pocketmq made; one test turns TLS off (the client's ``EnableSsl = false``) for the plaintext
path of the same port. What it sent is read back over remoting (PULL_MESSAGE), as in test_java5.py: bodies, tags,
keys, user properties, message ids, a FIFO group's queue and order, a delivery time, and transactions ended by the
producer or by its checker.
The consumer scenarios of compat_tests/grpc_consumer.py (SimpleConsumer and PushConsumer over POP) run as
``test_consumer_scenario[<name>]``, side by side once per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests import go5_driver, grpc_consumer, grpc_producer, harness
from compat_tests.go5_driver import Go5Client

pytestmark = [pytest.mark.compat]


@pytest.fixture(scope="module")
def build() -> go5_driver.Build:
    return go5_driver.build_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    yield from grpc_producer.serve(tmp_path_factory.mktemp("pocketmq-go5") / "data")


@pytest.fixture
def client(build: go5_driver.Build, tmp_path: Path) -> Iterator[Go5Client]:
    c = Go5Client(build=build, work_dir=tmp_path)
    try:
        yield c
    finally:
        c.close()


def test_sends_with_the_default_settings_tls_are_stored_intact(server: harness.PocketMQ, client: Go5Client) -> None:
    messages = grpc_producer.normal_messages("tls", "go5")
    result = client.produce(server.grpc_endpoints, "G5Normal", messages)
    assert result.sent == 5 and result.failed == 0
    grpc_producer.check_stored(server, "G5Normal", messages, result.sends)


def test_plaintext_sends_are_stored_intact(build: go5_driver.Build, server: harness.PocketMQ, tmp_path: Path) -> None:
    client = Go5Client(build=build, work_dir=tmp_path, plaintext=True)
    try:
        messages = grpc_producer.normal_messages("plain", "go5")
        result = client.produce(server.grpc_endpoints, "G5Plain", messages)
    finally:
        client.close()
    assert result.sent == 5
    grpc_producer.check_stored(server, "G5Plain", messages, result.sends)


def test_a_message_group_is_stored_in_one_queue_in_send_order(server: harness.PocketMQ, client: Go5Client) -> None:
    grpc_producer.message_group_in_one_queue_in_order(server, client, "G5Fifo")


def test_a_delivery_timestamp_holds_the_message_until_then(server: harness.PocketMQ, client: Go5Client) -> None:
    grpc_producer.delivery_time_honoured(server, client, "G5Delay")


def test_no_server_is_a_clean_error(client: Go5Client) -> None:
    result = grpc_producer.no_server_fails_at_startup(client, "G5None")
    assert result.errors()[0].get("stage") == "startup", result.errors()


def test_transactions_commit_rollback_and_back_check(server: harness.PocketMQ, client: Go5Client) -> None:
    grpc_producer.transactions_commit_rollback_and_back_check(server, client, "G5Tx")


@pytest.fixture(scope="module")
def consumer_results(
    build: go5_driver.Build, server: harness.PocketMQ, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Any]:
    """Every consumer scenario of compat_tests/grpc_consumer.py, run side by side once for the module."""
    work_dir = tmp_path_factory.mktemp("go5-consumers")
    return grpc_consumer.run_all(server, Go5Client(build=build, work_dir=work_dir))


@pytest.mark.parametrize("scenario", list(grpc_consumer.SCENARIOS))
def test_consumer_scenario(consumer_results: dict[tuple[str, str], Any], scenario: str) -> None:
    grpc_consumer.outcome_of(consumer_results, "pocketmq", scenario)

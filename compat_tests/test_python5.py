"""The official RocketMQ 5.x Python client (PyPI rocketmq-python-client, gRPC) producing to ``pocketmq up``.

The client runs unmodified, with its defaults (plaintext), or with TLS trusting the certificate pocketmq made in its
data directory. What it sent is read back over remoting (PULL_MESSAGE), so these tests also prove one store for
both protocols: bodies, tags, keys, user properties, message ids, a FIFO group's queue and order, a delivery time.
The consumer scenarios of compat_tests/grpc_consumer.py (SimpleConsumer and PushConsumer over POP) run as
``test_consumer_scenario[<name>]``; the same scenarios run side by side against Apache in test_python5_vs_apache.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codec.codes import PROPERTY_KEYS, PROPERTY_TAGS, PROPERTY_UNIQ_KEY
from codec.properties import decode_properties
from compat_tests import grpc_consumer, grpc_producer, harness, python5_driver
from compat_tests.python5_driver import Message, Python5Client

pytestmark = [pytest.mark.compat]


@pytest.fixture(scope="module")
def install() -> python5_driver.Install:
    return python5_driver.install_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    yield from grpc_producer.serve(tmp_path_factory.mktemp("pocketmq-grpc") / "data")


@pytest.fixture
def client(install: python5_driver.Install, tmp_path: Path) -> Iterator[Python5Client]:
    c = Python5Client(python=install.python, work_dir=tmp_path)
    try:
        yield c
    finally:
        c.close()


def test_sends_with_the_default_settings_are_stored_intact(server: harness.PocketMQ, client: Python5Client) -> None:
    messages = [
        Message(f"normal {i}".encode(), tag=f"Tag{i % 2}", keys=[f"key-{i}", "shared"], properties={"n": str(i)})
        for i in range(5)
    ]
    result = client.produce(server.grpc_endpoints, "Py5Normal", messages)
    assert result.sent == 5 and result.failed == 0
    stored = grpc_producer.by_body(grpc_producer.pulled(server, "Py5Normal"))
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
    [stored] = grpc_producer.pulled(server, "Py5Tls")
    assert stored.body == b"over tls"


def test_a_message_group_is_stored_in_one_queue_in_send_order(server: harness.PocketMQ, client: Python5Client) -> None:
    grpc_producer.message_group_in_one_queue_in_order(server, client, "Py5Fifo")


def test_a_delivery_time_holds_the_message_until_then(server: harness.PocketMQ, client: Python5Client) -> None:
    grpc_producer.delivery_time_honoured(server, client, "Py5Delay")


def test_no_server_is_a_clean_error(client: Python5Client) -> None:
    result = grpc_producer.no_server_fails_at_startup(client, "Py5None")
    assert "route" in result.errors()[0]["error"]


def test_transactions_commit_rollback_and_back_check(server: harness.PocketMQ, client: Python5Client) -> None:
    grpc_producer.transactions_commit_rollback_and_back_check(server, client, "Py5Tx")


@pytest.fixture(scope="module")
def consumer_results(
    install: python5_driver.Install, server: harness.PocketMQ, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Any]:
    """Every consumer scenario, run side by side once for the module."""
    work_dir = tmp_path_factory.mktemp("python5-consumers")
    return grpc_consumer.run_all(server, Python5Client(python=install.python, work_dir=work_dir))


@pytest.mark.parametrize("scenario", list(grpc_consumer.SCENARIOS))
def test_consumer_scenario(consumer_results: dict[tuple[str, str], Any], scenario: str) -> None:
    grpc_consumer.outcome_of(consumer_results, "pocketmq", scenario)


def test_pop_state_survives_kill_9(install: python5_driver.Install, tmp_path: Path) -> None:
    """A receive and an ack are durable before they are answered: after ``kill -9`` and a restart the acked message
    never comes back, the unacked one does (attempt 2) once its invisible time has passed, to the stock client."""
    server = harness.PocketMQ(data_dir=tmp_path / "data")
    server.start()
    client = Python5Client(python=install.python, work_dir=tmp_path / "client")
    try:
        grpc_producer.wait_for_port(server.grpc_port)
        sent = client.produce(server.grpc_endpoints, "PopKill", [Message(b"acked"), Message(b"unacked")])
        handed = grpc_consumer.receive_raw(server.grpc_endpoints, "PopKill", "pop-kill", invisible_s=10)
        assert sorted(m.body for m in handed) == [b"acked", b"unacked"]
        received_at = time.time()
        [acked] = [m for m in handed if m.body == b"acked"]
        grpc_consumer.ack_raw(server.grpc_endpoints, "PopKill", "pop-kill", acked)
        server.restart(kill=True)
        grpc_producer.wait_for_port(server.grpc_port)
        got = client.consume(server.grpc_endpoints, "PopKill", "pop-kill", expect=1, timeout=40, linger=4)
        assert [(d.body, d.delivery_attempt) for d in got.deliveries] == [(b"unacked", 2)]
        assert got.deliveries[0].message_id == sent.sends[1]["message_id"]
        assert got.deliveries[0].received_at_ms / 1000 >= received_at + 9, "visible again before its time"
    finally:
        client.close()
        server.stop()

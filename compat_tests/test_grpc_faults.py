"""Fault rules on gRPC calls with a stock 5.x client: the official Java client (Maven rocketmq-client-java, its
defaults) against ``pocketmq up`` while rules refuse its SendMessage calls or lose the answer to its AckMessage.

The producer retries a refused send (with the backoff of the settings pocketmq gave it: at most 3 attempts), so
one refusal costs nothing and the message is stored once; a rule that fires on more calls than the client makes
attempts fails the send with the injected status. A SimpleConsumer whose ack is dropped (handled, never answered)
sees its ack time out and gets the message again once its invisible duration is over. Rules go in with the
``pocketmq fault`` CLI and are read back from ``GET /api/faults``. Run: ``pytest compat_tests/test_grpc_faults.py
-s`` (needs java and mvn).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from compat_tests import grpc_producer, harness
from compat_tests.java5_driver import Java5Client, Message
from pocketmq.admin_client import AdminClient

pytestmark = [pytest.mark.compat]

MAX_ATTEMPTS = 3  # gateway.grpc.service.PRODUCER_MAX_ATTEMPTS: what the producer's settings say


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    yield from grpc_producer.serve(tmp_path_factory.mktemp("pocketmq-grpc-faults") / "data")


@pytest.fixture
def client(java5: Java5Client) -> Java5Client:
    return java5


def fault_add(server: harness.PocketMQ, *args: str) -> int:
    """``pocketmq fault add ... --http`` against ``server``; the new rule's id."""
    cmd = [sys.executable, "-m", "pocketmq", "fault", "add", *args, "--http", f"127.0.0.1:{server.http_port}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("rule "), proc.stdout
    return int(proc.stdout.split()[1].rstrip(":"))


def rule_counts(server: harness.PocketMQ, rule_id: int) -> tuple[int, int]:
    rules = AdminClient(f"http://127.0.0.1:{server.http_port}").get("/api/faults")["rules"]
    [rule] = [r for r in rules if r["id"] == rule_id]
    return rule["matched"], rule["injected"]


def test_java5_producer_retries_a_send_refused_once(server: harness.PocketMQ, client: Java5Client) -> None:
    topic = f"J5Fault{uuid.uuid4().hex[:8]}"
    rule_id = fault_add(server, "--method", "SendMessage", "--topic", topic, "--respond", "TOO_MANY_REQUESTS",
                        "--times", "1")  # fmt: skip
    started = time.monotonic()
    result = client.produce(server.grpc_endpoints, topic, [Message(b"sent once", tag="F")])
    assert result.sent == 1 and result.failed == 0
    stored = grpc_producer.pulled(server, topic)
    assert [m.body for m in stored] == [b"sent once"]  # the refused attempt stored nothing; the retry stored it
    assert rule_counts(server, rule_id) == (1, 1)
    print(f"\n[java5] one TOO_MANY_REQUESTS, retried: {time.monotonic() - started:.1f} s")


def test_java5_producer_fails_when_every_attempt_is_refused(server: harness.PocketMQ, client: Java5Client) -> None:
    topic = f"J5Fault{uuid.uuid4().hex[:8]}"
    rule_id = fault_add(server, "--method", "SendMessage", "--topic", topic, "--respond", "TOO_MANY_REQUESTS",
                        "--remark", "compat", "--times", str(MAX_ATTEMPTS + 2))  # fmt: skip
    started = time.monotonic()
    result = client.produce(server.grpc_endpoints, topic, [Message(b"never sent", tag="F")], check=False)
    assert (result.sent, result.failed) == (0, 1)
    [error] = result.errors()
    assert f"[pocketmq fault rule {rule_id}] injected TOO_MANY_REQUESTS: compat" in error["error"], error
    assert rule_counts(server, rule_id) == (MAX_ATTEMPTS, MAX_ATTEMPTS)  # one per attempt, then it gave up
    assert grpc_producer.pulled(server, topic) == []
    print(f"\n[java5] refused {MAX_ATTEMPTS} times: {error['error'][:160]} ({time.monotonic() - started:.1f} s)")


def test_java5_consumer_after_a_refused_and_a_lost_ack(server: harness.PocketMQ, client: Java5Client) -> None:
    """A refused ack (INTERNAL_SERVER_ERROR) leaves the message unacked: it comes back once its invisible duration is
    over. A dropped ack is handled, only its answer is lost: the client's ack times out, yet the message is acked
    and does not come back."""
    topic, group = f"J5Fault{uuid.uuid4().hex[:8]}", f"j5-fault-{uuid.uuid4().hex[:8]}"
    client.produce(server.grpc_endpoints, topic, [Message(b"acked twice", tag="F")])
    refused = fault_add(server, "--method", "AckMessage", "--group", group, "--respond", "INTERNAL_SERVER_ERROR",
                        "--times", "1")  # fmt: skip
    dropped = fault_add(server, "--method", "AckMessage", "--group", group, "--drop", "--times", "1")
    started = time.monotonic()
    result = client.consume(server.grpc_endpoints, topic, group, expect=2, timeout=40, invisible_s=10, linger=12)
    first, second = result.deliveries  # and no third: the lost ack was applied
    assert (first.body, first.delivery_attempt, first.acked) == (b"acked twice", 1, False)
    assert (second.body, second.delivery_attempt, second.acked) == (b"acked twice", 2, False)
    assert second.received_at_ms - first.received_at_ms >= 9_500  # back once the invisible duration was over
    assert rule_counts(server, refused) == (1, 1) and rule_counts(server, dropped) == (1, 1)
    print(f"\n[java5] refused ack: redelivered after {(second.received_at_ms - first.received_at_ms) / 1000:.1f} s; "
          f"lost ack: not redelivered ({time.monotonic() - started:.1f} s)")  # fmt: skip

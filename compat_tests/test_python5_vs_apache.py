"""APACHE BASELINE: the official RocketMQ 5.x Python client (PyPI rocketmq-python-client, gRPC) against the stock
Apache RocketMQ 5.3.3 proxy — not against pocketmq.

These tests prove the driver (compat_tests/python5/driver.py, through compat_tests/python5_driver.py) and pin down
what the real 5.x stack does, before the same scenarios are mirrored against pocketmq's gRPC endpoint. Every test
takes the ``grpc_target`` fixture, whose single parameter ``apache-5.3.3`` shows in each node id
(``test_...[apache-5.3.3]``); a pocketmq mirror adds its own target (an object with the same methods) and nothing
else changes.

The target is one module-scoped ``ApacheProxyStack`` (compat_tests/apache/servers.py): name server, broker with the
timer wheel on (5.x delay messages) and ``ProxyStartup -pm cluster`` on free loopback ports; the proxy's TLS (same
port, permissive) uses a certificate for 127.0.0.1 made here. Topics are created with their ``message.type`` and the
FIFO consumer group with ``consumeMessageOrderly`` at the broker (what the proxy reads to decide FIFO delivery).

Run: ``pytest compat_tests/test_python5_apache.py`` (needs java + mvn, and PyPI for the client's venv on first use;
skipped without them unless ``CI`` is set). Apache's logs stay under the module's tmp directory (``*/home/logs``),
the drivers' stdout copies and stderr under each test's.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from compat_tests import harness, python5_driver
from compat_tests.apache.servers import ApacheProxyStack, BuildError, build_classpath
from compat_tests.python5_driver import CHECK_PROPERTY, Delivery, Message, Python5Client

pytestmark = [pytest.mark.compat, pytest.mark.slow]

APACHE = "apache-5.3.3"
# System properties that Apache's proxy hands back among the user properties: a FIFO message's group (the broker's
# __SHARDINGKEY), and on a transaction message committed by a check its transaction id and the check count.
APACHE_ECHOED_SYSTEM_PROPERTIES = {"__SHARDINGKEY", "__transactionId__", "TRANSACTION_CHECK_TIMES"}


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def py5_install() -> python5_driver.Install:
    """The client's venv (compat_tests/python5/.venv), built once per session."""
    installed = python5_driver.install_or_skip()
    print(
        f"\n[python5] rocketmq-python-client {installed.client_version} on {installed.python_version}: "
        f"{installed.command} took {installed.seconds:.1f} s"
    )
    return installed


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its PKCS#8 key (what the proxy reads), as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "proxy.crt", directory / "proxy.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass(frozen=True)
class GrpcTarget:
    """Where the 5.x client connects, and how a test makes the topics and groups it uses there."""

    name: str
    endpoints: str
    ca_file: Path | None  # the PEM a TLS client must trust
    broker: str
    namesrv: str

    def topic(self, topic: str, message_type: str = "NORMAL") -> str:
        python5_driver.create_topic(self.broker, self.namesrv, topic, message_type)
        return topic

    def group(self, group: str, *, fifo: bool = False) -> str:
        python5_driver.create_group(self.broker, group, fifo=fifo)
        return group


@pytest.fixture(scope="module")
def apache_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheProxyStack]:
    java = harness.require_tool("java")
    mvn = harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed to run the Apache RocketMQ name server, broker and proxy")
    try:
        classpath = build_classpath(mvn)
    except BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    work_dir = tmp_path_factory.mktemp("apache-grpc")
    cert, key = _self_signed(work_dir)
    tls = {"tlsTestModeEnable": "false", "tlsCertPath": str(cert), "tlsKeyPath": str(key)}
    stack = ApacheProxyStack(java, classpath, work_dir, proxy_config=tls)
    started = time.monotonic()
    stack.start()
    print(f"\n[apache] name server + broker + proxy 5.3.3 up in {time.monotonic() - started:.1f} s")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module", params=[APACHE])
def grpc_target(request: pytest.FixtureRequest) -> GrpcTarget:
    stack: ApacheProxyStack = request.getfixturevalue("apache_stack")
    assert stack.namesrv is not None and stack.broker is not None
    ca_file = Path(stack.proxy_config["tlsCertPath"]) if "tlsCertPath" in stack.proxy_config else None
    return GrpcTarget(request.param, stack.endpoints, ca_file, stack.broker.addr, stack.namesrv.addr)


@pytest.fixture
def py5(py5_install: python5_driver.Install, tmp_path: Path) -> Iterator[Python5Client]:
    client = Python5Client(py5_install.python, tmp_path / "python5")
    try:
        yield client
    finally:
        client.close()


# --------------------------------------------------------------------------------------------- helpers


def user_properties(delivery: Delivery) -> dict[str, str]:
    return {k: v for k, v in delivery.properties.items() if k not in APACHE_ECHOED_SYSTEM_PROPERTIES}


def assert_once_each(deliveries: list[Delivery], sent_ids: list[str]) -> dict[str, Delivery]:
    """Every sent message delivered exactly once, nothing else; message id -> delivery."""
    ids = [d.message_id for d in deliveries]
    assert sorted(ids) == sorted(sent_ids), f"delivered {ids}, sent {sent_ids}"
    return {d.message_id: d for d in deliveries}


# --------------------------------------------------------------------------------------------- tests


def test_normal_messages_round_trip(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """5 NORMAL messages with tags, keys and user properties come back byte for byte, once each, through a
    SimpleConsumer that acks them."""
    topic = grpc_target.topic("Py5Normal", "NORMAL")
    messages = [
        Message(
            body=f"normal-{i} ünïcode ".encode() + bytes([0, 255, i]),
            tag="TagA" if i % 2 == 0 else "TagB",
            keys=[f"key-{i}", "shared-key"],
            properties={"idx": str(i), "color": "red" if i < 3 else "blue"},
        )
        for i in range(5)
    ]
    sent = py5.produce(grpc_target.endpoints, topic, messages)
    assert sent.sent == 5 and sent.failed == 0
    ids = [x["message_id"] for x in sent.sends]
    assert len(set(ids)) == 5

    got = py5.consume(grpc_target.endpoints, topic, "py5-normal-g", expect=5, timeout=40, linger=3)
    assert got.received == 5
    by_id = assert_once_each(got.deliveries, ids)
    for message, message_id in zip(messages, ids, strict=True):
        d = by_id[message_id]
        assert d.topic == topic
        assert d.body == message.body
        assert d.tag == message.tag
        assert d.keys == sorted(message.keys)
        assert d.properties == message.properties
        assert d.message_group is None
        assert d.message_type == "NORMAL"
        assert d.delivery_attempt == 1
        assert d.acked is True
        assert d.born_timestamp_ms is not None and d.born_timestamp_ms <= d.received_at_ms


def test_async_sends_round_trip(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """Producer.send_async for 5 messages at once: 5 receipts with distinct ids, all 5 delivered."""
    topic = grpc_target.topic("Py5Async", "NORMAL")
    messages = [Message(body=f"async-{i}".encode(), tag="A") for i in range(5)]
    sent = py5.produce(grpc_target.endpoints, topic, messages, send_async=True)
    ids = [x["message_id"] for x in sent.sends]
    assert len(set(ids)) == 5
    got = py5.consume(grpc_target.endpoints, topic, "py5-async-g", expect=5, timeout=40, linger=2)
    by_id = assert_once_each(got.deliveries, ids)
    assert [by_id[i].body for i in ids] == [m.body for m in messages]


def test_fifo_message_group_in_order(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """A FIFO topic, one message group of 5, a FIFO consumer group: one queue, delivered in send order."""
    topic = grpc_target.topic("Py5Fifo", "FIFO")
    group = grpc_target.group("py5-fifo-g", fifo=True)
    messages = [Message(body=f"fifo-{i}".encode(), tag="F", message_group="order-1") for i in range(5)]
    sent = py5.produce(grpc_target.endpoints, topic, messages, kind="fifo")
    ids = [x["message_id"] for x in sent.sends]
    assert len({x["queue"] for x in sent.sends}) == 1, "one message group, one queue"

    got = py5.consume(grpc_target.endpoints, topic, group, expect=5, timeout=40, linger=2)
    assert_once_each(got.deliveries, ids)
    assert [d.message_id for d in got.deliveries] == ids
    assert [d.body for d in got.deliveries] == [m.body for m in messages]
    for d in got.deliveries:
        assert d.message_group == "order-1"
        assert d.message_type == "FIFO"
        assert user_properties(d) == {}
        assert d.properties.get("__SHARDINGKEY", "order-1") == "order-1"


def test_delay_message_not_before_due(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """A DELAY message due 3 s after its send reaches a consumer that was waiting, not before it is due."""
    topic = grpc_target.topic("Py5Delay", "DELAY")
    consumer = py5.start_consume(grpc_target.endpoints, topic, "py5-delay-g", expect=1, timeout=40, linger=1)
    consumer.wait_until(lambda lines: any(x.get("ready") for x in lines), 30)
    sent = py5.produce(grpc_target.endpoints, topic, [Message(body=b"later", delivery_delay_ms=3000)], kind="delay")
    send = sent.sends[0]
    due = send["delivery_timestamp_ms"]
    assert due >= send["sent_at_ms"] + 3000

    got = py5.collect(consumer, 100)
    (d,) = assert_once_each(got.deliveries, [send["message_id"]]).values()
    assert d.body == b"later"
    assert d.message_type == "DELAY"
    assert d.delivery_timestamp_ms == due
    assert d.received_at_ms >= due, f"delivered {due - d.received_at_ms} ms early"
    assert d.received_at_ms <= due + 15_000, "delivered far too late"


def test_tag_and_sql_filters(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """A tag expression and a SQL92 expression, each on its own group, get exactly the matching messages."""
    topic = grpc_target.topic("Py5Filter", "NORMAL")
    messages = [
        Message(body=f"m{i}".encode(), tag=tag, properties={"n": str(i)})
        for i, tag in enumerate(["TagA", "TagB", "TagC", "TagA", "TagB"])
    ]
    sent = py5.produce(grpc_target.endpoints, topic, messages)
    ids = [x["message_id"] for x in sent.sends]
    by_tag = py5.consume(
        grpc_target.endpoints, topic, "py5-tag-g", expect=3, timeout=40, linger=3, tag_expression="TagA || TagC"
    )
    assert_once_each(by_tag.deliveries, [ids[0], ids[2], ids[3]])
    by_sql = py5.consume(grpc_target.endpoints, topic, "py5-sql-g", expect=2, timeout=40, linger=3, sql="n >= 3")
    assert_once_each(by_sql.deliveries, [ids[3], ids[4]])


def test_transactions_commit_and_rollback(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """Half messages ended by the producer: the committed ones are delivered, the rolled back one never."""
    topic = grpc_target.topic("Py5Tx", "TRANSACTION")
    messages = [
        Message(body=b"tx-commit-1", tag="T"),
        Message(body=b"tx-rollback", tag="T", end="rollback"),
        Message(body=b"tx-commit-2", tag="T"),
    ]
    sent = py5.produce(grpc_target.endpoints, topic, messages, kind="transaction", end="commit")
    assert [x["end"] for x in sent.sends] == ["commit", "rollback", "commit"]
    assert all(x.get("transaction_id") for x in sent.sends)
    ids = [x["message_id"] for x in sent.sends]
    got = py5.consume(grpc_target.endpoints, topic, "py5-tx-g", expect=2, timeout=40, linger=4)
    by_id = assert_once_each(got.deliveries, [ids[0], ids[2]])
    assert {d.body for d in by_id.values()} == {b"tx-commit-1", b"tx-commit-2"}
    assert all(d.message_type == "TRANSACTION" for d in by_id.values())


def test_transaction_checker_resolves_open_transactions(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """Half messages left open: the server asks the producer's checker, which answers from the pmqCheck
    property; the one it commits is delivered, the one it rolls back is not. Checks are at least once: with the
    stack's 1 s check interval Apache's broker may ask twice before the first answer lands, and then stores the
    committed message twice, so copies of it are allowed."""
    topic = grpc_target.topic("Py5TxCheck", "TRANSACTION")
    messages = [
        Message(body=b"checked-commit", properties={CHECK_PROPERTY: "COMMIT"}),
        Message(body=b"checked-rollback", properties={CHECK_PROPERTY: "ROLLBACK"}),
    ]
    consumer = py5.start_consume(grpc_target.endpoints, topic, "py5-txcheck-g", expect=1, timeout=90, linger=5)
    sent = py5.produce(grpc_target.endpoints, topic, messages, kind="transaction", end="none", linger=60, timeout=120)
    ids = [x["message_id"] for x in sent.sends]
    answers: dict[str, set[str]] = {}
    for check in sent.checks:
        answers.setdefault(check["message_id"], set()).add(check["resolution"])
    assert {i: answers.get(i) for i in ids} == {ids[0]: {"COMMIT"}, ids[1]: {"ROLLBACK"}}, sent.checks
    got = py5.collect(consumer, 150)
    assert got.deliveries and {d.message_id for d in got.deliveries} == {ids[0]}, got.deliveries
    for d in got.deliveries:
        assert d.body == b"checked-commit" and user_properties(d) == {CHECK_PROPERTY: "COMMIT"}
        assert d.message_type == "TRANSACTION"


def test_push_consumer_redelivers_after_failure(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """A PushConsumer whose listener fails each message's first delivery gets it again (delivery attempt 2)."""
    topic = grpc_target.topic("Py5Push", "NORMAL")
    sent = py5.produce(grpc_target.endpoints, topic, [Message(body=f"push-{i}".encode()) for i in range(2)])
    ids = [x["message_id"] for x in sent.sends]
    got = py5.consume(
        grpc_target.endpoints, topic, "py5-push-g", expect=2, timeout=90, linger=2, push=True, fail_first=True
    )
    assert got.received == 2
    for message_id in ids:
        attempts = [(d.delivery_attempt, d.result) for d in got.deliveries if d.message_id == message_id]
        assert attempts == [(1, "FAILURE"), (2, "SUCCESS")], got.deliveries


def test_tls_round_trip(grpc_target: GrpcTarget, py5_install: python5_driver.Install, tmp_path: Path) -> None:
    """tls_enable=True, the driver trusting the server's certificate: a message goes and comes back over TLS. The
    same client trusting only the default roots cannot send (so the connection really is TLS, not plaintext)."""
    assert grpc_target.ca_file is not None
    topic = grpc_target.topic("Py5Tls", "NORMAL")
    untrusting = Python5Client(py5_install.python, tmp_path / "python5-tls-default-roots", tls=True)
    try:
        refused = untrusting.produce(grpc_target.endpoints, topic, [Message(body=b"x")], check=False, timeout=120)
        # The producer starts all the same; its send finds no route (CERTIFICATE_VERIFY_FAILED in its log).
        assert [x["ok"] for x in refused.sends] == [False], refused.sends
    finally:
        untrusting.close()
    client = Python5Client(py5_install.python, tmp_path / "python5-tls", tls=True, ca_file=grpc_target.ca_file)
    try:
        sent = client.produce(grpc_target.endpoints, topic, [Message(body=b"over tls", tag="S")])
        got = client.consume(grpc_target.endpoints, topic, "py5-tls-g", expect=1, timeout=40)
        (d,) = assert_once_each(got.deliveries, [sent.sends[0]["message_id"]]).values()
        assert d.body == b"over tls" and d.tag == "S"
    finally:
        client.close()


def test_client_bug_delivery_timestamp_in_milliseconds(grpc_target: GrpcTarget, py5: Python5Client) -> None:
    """rocketmq-python-client 5.1.2 writes Message.delivery_timestamp, documented in ms, into Timestamp.seconds:
    a delay message set as its docs say carries a time ~1000x too far and the send fails (Apache: INTERNAL_ERROR,
    an invalid Timestamp). The driver works around it by default (whole seconds); --raw-delivery-timestamp shows it."""
    topic = grpc_target.topic("Py5DelayMs", "DELAY")
    message = Message(body=b"x", delivery_delay_ms=3000)
    raw = py5.produce(grpc_target.endpoints, topic, [message], kind="delay", raw_delivery_timestamp=True, check=False)
    (line,) = raw.sends
    assert line["ok"] is False, line
    fixed = py5.produce(grpc_target.endpoints, topic, [message], kind="delay")
    assert fixed.sends[0]["ok"] is True

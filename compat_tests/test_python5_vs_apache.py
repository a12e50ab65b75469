"""SIDE BY SIDE: the official RocketMQ 5.x Python client (PyPI rocketmq-python-client, gRPC) runs each consumer scenario
of compat_tests/grpc_consumer.py against the stock Apache RocketMQ 5.3.3 proxy and against pocketmq, and the two
outcomes (what was received, in what order, how many times, normalised) must be equal: a difference is found by a
machine, not by reading. ``test_same_outcome[<scenario>]`` fails naming the server whose run broke the scenario's
own expectations, or showing both outcomes when they differ. A few producer-side checks run against both servers.

Apache is one module-scoped ``ApacheProxyStack`` (compat_tests/apache/servers.py): name server, broker with the timer
wheel on (5.x delay messages) and ``ProxyStartup -pm cluster`` on free loopback ports; the proxy's TLS (same port,
permissive) uses a certificate for 127.0.0.1 made here. pocketmq is one ``pocketmq up``. Topics are created with
their ``message.type`` and groups with ``consumeMessageOrderly`` / ``retryMaxTimes`` at each broker, as ``mqadmin``
would. These tests belong to no conformance cell (conformance.APACHE_BASELINE_MODULES).

Run: ``pytest compat_tests/test_python5_vs_apache.py`` (needs java + mvn, and PyPI for the client's venv on first use;
skipped without them unless ``CI`` is set). Apache's logs stay under the module's tmp directory (``*/home/logs``),
the drivers' stdout copies and stderr under each test's.
"""

from __future__ import annotations

import datetime
import ipaddress
import pprint
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from compat_tests import grpc_consumer, grpc_producer, harness, python5_driver
from compat_tests.apache.servers import ApacheProxyStack, BuildError, build_classpath
from compat_tests.grpc_consumer import GrpcTarget
from compat_tests.python5_driver import Message, Python5Client

pytestmark = [pytest.mark.compat, pytest.mark.slow]

APACHE = "apache-5.3.3"
POCKETMQ = "pocketmq"
SERVERS = [APACHE, POCKETMQ]


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


@pytest.fixture(scope="module")
def pocketmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.PocketMQ]:
    yield from grpc_producer.serve(tmp_path_factory.mktemp("pocketmq-grpc") / "data")


@pytest.fixture(scope="module")
def targets(apache_stack: ApacheProxyStack, pocketmq_server: harness.PocketMQ) -> dict[str, GrpcTarget]:
    assert apache_stack.namesrv is not None and apache_stack.broker is not None
    ca_file = Path(apache_stack.proxy_config["tlsCertPath"]) if "tlsCertPath" in apache_stack.proxy_config else None
    apache = GrpcTarget(APACHE, apache_stack.endpoints, ca_file, apache_stack.broker.addr, apache_stack.namesrv.addr)
    return {APACHE: apache, POCKETMQ: grpc_consumer.pocketmq_target(pocketmq_server)}


@pytest.fixture
def py5(py5_install: python5_driver.Install, tmp_path: Path) -> Iterator[Python5Client]:
    client = Python5Client(py5_install.python, tmp_path / "python5")
    try:
        yield client
    finally:
        client.close()


# --------------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def results(
    targets: dict[str, GrpcTarget], py5_install: python5_driver.Install, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[tuple[str, str], Any]]:
    """Every scenario against both servers, side by side (they mostly wait), once for the module."""
    client = Python5Client(py5_install.python, tmp_path_factory.mktemp("python5-scenarios"))
    jobs = [(target, name) for name in grpc_consumer.SCENARIOS for target in targets.values()]
    try:
        yield grpc_consumer.run_concurrently(jobs, client, workers=6)
    finally:
        client.close()


@pytest.mark.parametrize("scenario", list(grpc_consumer.SCENARIOS))
def test_same_outcome(results: dict[tuple[str, str], Any], scenario: str) -> None:
    outcomes = {}
    for name in SERVERS:
        try:
            outcomes[name] = grpc_consumer.outcome_of(results, name, scenario)
        except AssertionError as exc:
            pytest.fail(f"{scenario} against {name}: {exc}", pytrace=False)
    assert outcomes[POCKETMQ] == outcomes[APACHE], f"{scenario}: the outcomes differ\n{pprint.pformat(outcomes)}"


@pytest.mark.parametrize("server", SERVERS)
def test_async_sends_round_trip(targets: dict[str, GrpcTarget], py5: Python5Client, server: str) -> None:
    """Producer.send_async for 5 messages at once: 5 receipts with distinct ids, all 5 delivered."""
    target = targets[server]
    topic = target.topic("Py5Async", "NORMAL")
    messages = [Message(body=f"async-{i}".encode(), tag="A") for i in range(5)]
    sent = py5.produce(target.endpoints, topic, messages, send_async=True)
    ids = [x["message_id"] for x in sent.sends]
    assert len(set(ids)) == 5
    got = py5.consume(target.endpoints, topic, "py5-async-g", expect=5, timeout=40, linger=2)
    by_id = grpc_consumer.once_each(got.deliveries, ids)
    assert [by_id[i].body for i in ids] == [m.body for m in messages]


@pytest.mark.parametrize("server", SERVERS)
def test_tls_round_trip(
    targets: dict[str, GrpcTarget], py5_install: python5_driver.Install, tmp_path: Path, server: str
) -> None:
    """tls_enable=True, the driver trusting the server's certificate: a message goes and comes back over TLS. The
    same client trusting only the default roots cannot send (so the connection really is TLS, not plaintext)."""
    target = targets[server]
    assert target.ca_file is not None
    topic = target.topic("Py5Tls", "NORMAL")
    untrusting = Python5Client(py5_install.python, tmp_path / "python5-tls-default-roots", tls=True)
    try:
        refused = untrusting.produce(target.endpoints, topic, [Message(body=b"x")], check=False, timeout=120)
        # The producer starts all the same; its send finds no route (CERTIFICATE_VERIFY_FAILED in its log).
        assert [x["ok"] for x in refused.sends] == [False], refused.sends
    finally:
        untrusting.close()
    client = Python5Client(py5_install.python, tmp_path / "python5-tls", tls=True, ca_file=target.ca_file)
    try:
        sent = client.produce(target.endpoints, topic, [Message(body=b"over tls", tag="S")])
        got = client.consume(target.endpoints, topic, "py5-tls-g", expect=1, timeout=40)
        (d,) = grpc_consumer.once_each(got.deliveries, [sent.sends[0]["message_id"]]).values()
        assert d.body == b"over tls" and d.tag == "S"
    finally:
        client.close()


@pytest.mark.parametrize("server", SERVERS)
def test_client_bug_delivery_timestamp_in_milliseconds(
    targets: dict[str, GrpcTarget], py5: Python5Client, server: str
) -> None:
    """rocketmq-python-client 5.1.2 writes Message.delivery_timestamp, documented in ms, into Timestamp.seconds:
    a delay message set as its docs say carries a time ~1000x too far and the send fails (Apache: INTERNAL_ERROR,
    an invalid Timestamp). The driver works around it by default (whole seconds); --raw-delivery-timestamp shows it."""
    target = targets[server]
    topic = target.topic("Py5DelayMs", "DELAY")
    message = Message(body=b"x", delivery_delay_ms=3000)
    raw = py5.produce(target.endpoints, topic, [message], kind="delay", raw_delivery_timestamp=True, check=False)
    (line,) = raw.sends
    assert line["ok"] is False, line
    fixed = py5.produce(target.endpoints, topic, [message], kind="delay")
    assert fixed.sends[0]["ok"] is True

"""Cross-client conformance: a message sent by each stock client is consumed intact by each other client.

One pocketmq for the module and one topic (created first: ali-ons cannot send to a missing topic). Every sender
client sends the same corpus (compat_tests/cross_client.py: ASCII, unicode text, all byte values, ~8 KiB
compressible and ~300 KiB bodies; ASCII and non-ASCII tags; three keys; user properties with unicode values), each
message marked with its sender and sequence number. Then every consumer client consumes the whole topic once, in its
own group, all of them in parallel. Each test is one cell: what one consumer client got from one sender client —
every message exactly once, its body byte-exact, tags, keys, every user property, and where the consumer reports it,
whether the stored message was compressed (the sender's sysFlag).

Client differences asserted as such: the C++ client (PyPI rocketmq 0.4.4) cannot send a NUL byte and its consumer
sees a body only up to its first NUL, nor can it list properties or report the sysFlag (see cross_client.py); Java
5.x consumers clear COMPRESSED_FLAG once they inflated a body, and the Go, C++ and Node senders set only that flag
where Java and Rust also name the compression type (ZLIB).
Run: ``pytest compat_tests/test_cross_client.py`` (each client's cells skip without its toolchain unless ``CI`` is set).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from compat_tests import cross_client, harness
from compat_tests.cross_client import CLIENTS, COMPRESS_OVER, USER_PROPS, Item, Received
from compat_tests.harness import PocketMQ
from compat_tests.node_driver import create_topic

# The first test waits for the session's driver builds (a cold cargo build is ~4 min on 2 cores).
pytestmark = [pytest.mark.compat, pytest.mark.slow, pytest.mark.timeout(900)]

CONSUME_TIMEOUT = 90.0
COMPRESSED_FLAG = 0x1  # MessageSysFlag.COMPRESSED_FLAG
COMPRESSION_BITS = 0x701  # COMPRESSED_FLAG | COMPRESSION_TYPE_COMPARATOR (bits 8-10: 1 LZ4, 2 ZSTD, 3 ZLIB)
# The sysFlag compression bits each sender sets on a body of 4 KiB or more (compressMsgBodyOverHowmuch = 4096 in
# every client; all deflate with zlib). Newer clients also name the type (COMPRESSION_ZLIB_TYPE = 0x300).
STORED_COMPRESSION = {
    "java-4.9.8": 0x301,  # DefaultMQProducerImpl: sysFlag |= COMPRESSED_FLAG | compressType.getCompressionFlag()
    "java-5.3.3": 0x301,  # the same
    "go": 0x1,  # producer.compressMsg: only COMPRESSED_FLAG
    "cpp": 0x1,  # DefaultMQProducer::tryToCompressMessage: only COMPRESSED_FLAG
    "node": 0x1,  # MQProducer#tryToCompressMessage: only CompressedFlag
    "rust": 0x301,  # DefaultMQProducerImpl: sys_flag |= compress_type.get_compression_flag(), as Java
}
# User properties a sender's driver adds to every message itself.
SENDER_EXTRA_PROPS = {"node": {"pmqName"}}
# Consumers that cannot list a message's properties (C++ 0.4.4 reads them by name only).
PROPS_BY_NAME_ONLY = {"cpp"}
# Consumers whose decoder clears COMPRESSED_FLAG once it inflated the body (5.x MessageDecoder.decode); the others
# report the stored flags.
INFLATED_CLEARS_FLAG = {"java-5.3.3"}


@dataclass
class Matrix:
    """Who sent what, and what each consumer client received (or why it could not take part)."""

    unavailable: dict[str, str] = field(default_factory=dict)  # client -> skip reason
    broken: dict[str, str] = field(default_factory=dict)  # client -> build / start failure
    sent: dict[str, list[Item]] = field(default_factory=dict)
    send_errors: dict[str, str] = field(default_factory=dict)
    received: dict[str, list[Received]] = field(default_factory=dict)
    consume_errors: dict[str, str] = field(default_factory=dict)


def _selected_pairs(session: pytest.Session, module: str) -> set[tuple[str, str]]:
    pairs = set()
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if item.path.name == module and callspec and "pair" in callspec.params:
            pairs.add(callspec.params["pair"])
    return pairs


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _prepare(clients: list[str], work: Path, result: Matrix) -> dict[str, cross_client.Adapter]:
    adapters = {}
    for client in clients:
        try:
            adapters[client] = cross_client.prepare(client, work / client)
        except cross_client.Unavailable as exc:
            result.unavailable[client] = str(exc)
        except Exception as exc:
            result.broken[client] = _failure(exc)
    return adapters


@pytest.fixture(scope="module")
def matrix(
    request: pytest.FixtureRequest, pocketmq: PocketMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    pairs = _selected_pairs(request.session, Path(__file__).name)
    senders = sorted({s for s, _ in pairs})
    consumers = sorted({c for _, c in pairs})
    work = tmp_path_factory.mktemp("cross")
    result = Matrix()
    adapters: dict[str, cross_client.Adapter] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        clients = sorted({*senders, *consumers})
        # One thread per toolchain: the two Java builds share maven's local repository, so they run one after the other.
        toolchains = [
            [c for c in clients if c.startswith("java-")],
            *([c] for c in clients if not c.startswith("java-")),
        ]
        for done in concurrent.futures.as_completed([pool.submit(_prepare, t, work, result) for t in toolchains if t]):
            adapters.update(done.result())
        try:
            topic = f"CrossClient-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            create_topic(pocketmq.broker_addr, pocketmq.namesrv_addr, topic, queues=4)

            def send(client: str) -> list[Item]:
                items = cross_client.corpus(client)
                adapters[client].produce(pocketmq.namesrv_addr, topic, items)
                return items

            sending = {c: pool.submit(send, c) for c in senders if c in adapters}
            for client, future in sending.items():
                try:
                    result.sent[client] = future.result()
                except Exception as exc:
                    result.send_errors[client] = _failure(exc)
            expect = sum(len(items) for items in result.sent.values())

            def consume(client: str) -> list[Received]:
                group = cross_client.group_name("xcc", client)
                handle = adapters[client].start_consume(pocketmq.namesrv_addr, topic, group, expect, CONSUME_TIMEOUT)
                return handle.finish()

            consuming = {c: pool.submit(consume, c) for c in consumers if c in adapters}
            for client, future in consuming.items():
                try:
                    result.received[client] = future.result()
                except Exception as exc:
                    result.consume_errors[client] = _failure(exc)
            yield result
        finally:
            for adapter in adapters.values():
                adapter.close()


def _require(matrix: Matrix, client: str) -> None:
    if client in matrix.broken:
        pytest.fail(f"{client}: {matrix.broken[client]}", pytrace=False)
    if client in matrix.unavailable:
        if harness.IN_CI:
            pytest.fail(f"{client} is required in CI: {matrix.unavailable[client]}", pytrace=False)
        pytest.skip(matrix.unavailable[client])


def _expected_body(item: Item, consumer: str) -> bytes:
    if consumer == "cpp":
        return item.body.split(b"\0", 1)[0]  # the 0.4.4 C API returns the body as a NUL-terminated string
    return item.body


PAIRS = [(s, c) for s, c in itertools.product(CLIENTS, CLIENTS) if s != c]


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{s}-to-{c}" for s, c in PAIRS])
def test_consumed_intact(pair: tuple[str, str], matrix: Matrix) -> None:
    """Every message ``sender`` sent reached ``consumer`` exactly once, as sent."""
    sender, consumer = pair
    _require(matrix, sender)
    _require(matrix, consumer)
    if sender in matrix.send_errors:
        pytest.fail(f"{sender} could not send the corpus: {matrix.send_errors[sender]}", pytrace=False)
    if consumer in matrix.consume_errors:
        pytest.fail(f"{consumer} could not consume: {matrix.consume_errors[consumer]}", pytrace=False)
    sent = matrix.sent[sender]
    got: dict[int, list[Received]] = {}
    for r in matrix.received[consumer]:
        if r.sender == sender:
            assert r.seq is not None and 0 <= r.seq < len(sent), f"unknown sequence number: {r.props}"
            got.setdefault(r.seq, []).append(r)
    counts = {it.seq: len(got.get(it.seq, [])) for it in sent}
    assert all(n == 1 for n in counts.values()), f"deliveries per message (seq -> count), want 1 each: {counts}"

    for item in sent:
        (r,) = got[item.seq]
        what = f"{item.kind} message #{item.seq} of {sender}"
        want_body = _expected_body(item, consumer)
        assert r.body == want_body, f"{what}: body differs ({len(r.body)} bytes received, {len(want_body)} expected)"
        assert r.tags == item.tags, f"{what}: tags {r.tags!r}"
        assert r.keys == item.keys, f"{what}: keys {r.keys!r}"
        assert {p: r.props.get(p) for p in USER_PROPS} == item.props, f"{what}: user properties {r.props!r}"
        if consumer not in PROPS_BY_NAME_ONLY:
            # Nothing else a user could have set (system properties are upper case) appeared on the way.
            user_names = {k for k in r.props if k != k.upper()}
            want_names = set(item.props) | SENDER_EXTRA_PROPS.get(sender, set())
            assert user_names == want_names, f"{what}: user property names {sorted(user_names)}"
        big = len(item.body) >= COMPRESS_OVER
        if r.sys_flag is not None:
            stored = STORED_COMPRESSION[sender] if big else 0
            want = stored & ~COMPRESSED_FLAG if consumer in INFLATED_CLEARS_FLAG else stored
            got_flags = r.sys_flag & COMPRESSION_BITS
            assert got_flags == want, f"{what}: sysFlag {r.sys_flag:#x}, want compression bits {want:#x}"
        if r.store_size is not None and item.kind == "compressible":
            # The stored record holds the body as the sender put it: deflated (~10x smaller) or not.
            assert (r.store_size < len(item.body) / 2) == bool(STORED_COMPRESSION[sender]), (
                f"{what}: store size {r.store_size}"
            )

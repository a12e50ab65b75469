"""The Rust client from crates.io (``rocketmq-client-rust``, mxsm/rocketmq-rust) against a running pocketmq.

It is the strictest parser of the clients (protocol/clients.md §6): JSON headers deserialised into structs with
required fields, quoted route keys. Each test drives real processes of ``compat_tests/rust`` (see rust_driver.py):
a producer (sync sends, request code 10 by default or 310 with the client's smart-message switch, or one batch,
code 320) and a push consumer (clustering, from the first offset), and asserts on what the client actually
received: bodies byte-equal (1 MiB ones included), tags, keys, user properties, ids and queue positions.
Run: ``pytest compat_tests/test_rust.py -s`` (needs cargo; skipped without it unless ``CI`` is set; the first run
builds the driver, ~4-5 minutes cold on 2 cores; ``-s`` shows the build time).
"""

from __future__ import annotations

import base64
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import PocketMQ
from compat_tests.rust_driver import Build, BuildError, Message, RustClient, build, find_cargo

# The first test also waits for the session's cargo build (~4 min cold on 2 cores, bounded by rust_driver's own
# 540 s limit); every test body bounds its driver processes itself (<= 60 s each).
pytestmark = [pytest.mark.compat, pytest.mark.slow, pytest.mark.timeout(600)]

UNICODE_VALUE = "ünïcødé ✓ 日本語 a=b;c:d"
MIB = 1024 * 1024
# Properties the client or the broker add on the way (everything else must be exactly what was sent).
SYSTEM_PROPS = {"KEYS", "TAGS", "WAIT", "UNIQ_KEY", "MIN_OFFSET", "MAX_OFFSET", "CONSUME_START_TIME", "CLUSTER"}
HEX32 = re.compile(r"[0-9A-F]{32}")


@pytest.fixture(scope="session")
def rust_build() -> Build:
    """Build the driver once per session (crate download + compile on a fresh machine)."""
    cargo = find_cargo()
    if cargo is None:
        pytest.skip("cargo is needed for the Rust client compatibility tests")
    try:
        built = build(cargo)
    except BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(
        f"\n[rust] rocketmq-client-rust {built.client_version} with {built.rustc_version}: build {built.seconds:.1f} s"
    )
    return built


@pytest.fixture
def rust(rust_build: Build, tmp_path: Path) -> Iterator[RustClient]:
    client = RustClient(binary=rust_build.binary, work_dir=tmp_path / "rust")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def names(request: pytest.FixtureRequest) -> str:
    """Topic/group name prefix unique per test and run (``pid`` keeps reruns on one server apart)."""
    base = re.sub(r"[^A-Za-z0-9-]", "-", request.node.name.removeprefix("test_").replace("_", "-")).strip("-")
    return f"rs-{base}-{os.getpid()}"


# --------------------------------------------------------------------------------------------------------- helpers


def make_messages(topic: str, count: int, tags: list[str | None]) -> list[Message]:
    """Distinct binary bodies (every byte value appears), two keys each and user properties."""
    rng = random.Random(topic)
    return [
        Message(
            topic=topic,
            body=f"{topic}#{i}|".encode() + bytes(range(256)) + rng.randbytes(rng.randrange(0, 200)),
            tags=tags[i % len(tags)],
            keys=[f"{topic}-key-{i}", f"{topic}-shared"],
            props={"pmqIndex": str(i), "pmqText": UNICODE_VALUE, "pmq-topic": topic},
        )
        for i in range(count)
    ]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def received_messages(proc: Any, timeout: float) -> list[dict[str, Any]]:
    proc.join(timeout)
    (summary,) = proc.events("summary")
    assert not summary["timedOut"], f"consumer timed out: {summary}\n{proc.describe()}"
    return proc.events("received")


def assert_sent_ok(results: list[dict[str, Any]], count: int, topic: str) -> None:
    """One result per message, in order; ids well formed; offsets within each queue grow with the send order."""
    assert [r["index"] for r in results] == list(range(count)), "missing send results"
    last: dict[int, int] = {}
    for r in results:
        assert r["status"] == "SendOk", r
        assert r["topic"] == topic and r["brokerName"] == "broker-a", r
        assert HEX32.fullmatch(r["msgId"] or ""), f"msgId is not 32 hex chars: {r}"
        assert HEX32.fullmatch(r["offsetMsgId"] or ""), f"offsetMsgId is not 32 hex chars: {r}"
        assert r["queueOffset"] > last.get(r["queueId"], -1), f"queue offsets out of order: {r}"
        last[r["queueId"]] = r["queueOffset"]


def assert_received_intact(
    topic: str,
    sent: list[Message],
    received: list[dict[str, Any]],
    results: list[dict[str, Any] | None],
    server: PocketMQ,
) -> None:
    """Every sent message arrived exactly once, as sent (and where its send result said it went)."""
    index: dict[str, list[dict[str, Any]]] = {}
    for m in received:
        index.setdefault(m["body"], []).append(m)
    missing = [i for i, m in enumerate(sent) if b64(m.body) not in index]
    assert not missing, f"{len(missing)} of {len(sent)} messages never arrived (indexes {missing[:20]})"
    assert len(received) == len(sent), f"{len(received)} deliveries for {len(sent)} messages"
    now_ms = time.time() * 1000
    for i, msg in enumerate(sent):
        (got,) = index[b64(msg.body)]
        where = f"message {i} ({msg.tags})"
        assert got["bodyLen"] == len(msg.body), where
        assert got["topic"] == topic, where
        assert got["tags"] == msg.tags, where
        assert got["keys"] == msg.keys, where
        user = {k: v for k, v in got["allProps"].items() if k not in SYSTEM_PROPS}
        assert user == msg.props, f"{where}: user properties differ; all properties {got['allProps']}"
        assert got["reconsumeTimes"] == 0, where
        assert got["storeHost"] == server.broker_addr, f"{where}: store host"
        assert got["bornHost"].startswith("127.0.0.1:"), f"{where}: born host {got['bornHost']}"
        assert abs(got["bornTimestamp"] - now_ms) < 600_000, f"{where}: born timestamp {got['bornTimestamp']}"
        assert got["bornTimestamp"] - 1000 <= got["storeTimestamp"] <= now_ms + 1000, f"{where}: store timestamp"
        assert got["storeTimestamp"] <= got["receivedAt"] + 1000, f"{where}: received before it was stored"
        assert got["msgId"] == got["allProps"].get("UNIQ_KEY"), f"{where}: msgId is not the UNIQ_KEY"
        res = results[i]
        if res is not None:
            assert got["msgId"] == res["msgId"], f"{where}: msgId (UNIQ_KEY) differs from the send result"
            assert got["extMsgId"] == res["offsetMsgId"], f"{where}: offsetMsgId differs from the send result"
            assert (got["queueId"], got["queueOffset"]) == (res["queueId"], res["queueOffset"]), where
    positions = [(m["queueId"], m["queueOffset"]) for m in received]
    assert len(set(positions)) == len(positions), "two messages share a (queueId, queueOffset)"
    physical = [m["commitLogOffset"] for m in received]
    assert len(set(physical)) == len(physical), "two messages share a commit-log offset"


# ----------------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("smart", [False, True], ids=["code10", "code310"])
def test_sync_sends_with_tags_keys_properties_and_1mib_bodies(
    pocketmq: PocketMQ, rust: RustClient, names: str, smart: bool
) -> None:
    """Sync sends (request code 10, or 310 with sendSmartMsg) of small binary messages and two 1 MiB bodies (one
    incompressible, one the client zlib-compresses), consumed intact by the push consumer."""
    topic = f"{names}-topic"
    sent = make_messages(topic, 12, tags=["a", "b", None, "c d"])
    rng = random.Random(names)
    sent.append(Message(topic=topic, body=rng.randbytes(MIB), tags="big", keys=[f"{topic}-big"], props={"n": "1"}))
    text = (UNICODE_VALUE + " repeated to compress\n").encode()
    sent.append(Message(topic=topic, body=(text * (MIB // len(text) + 1))[:MIB], tags="big", props={"n": "2"}))

    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent, smart=smart)
    assert_sent_ok(results, len(sent), topic)

    consumer = rust.start_consume(pocketmq.namesrv_addr, topic, f"{names}-cg", len(sent), timeout=40, linger=1.0)
    received = received_messages(consumer, timeout=60)
    assert_received_intact(topic, sent, received, list(results), pocketmq)


def test_tag_subscription_or(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """``a || b``: exactly the messages tagged a or b arrive, never c or untagged ones (the linger would see them)."""
    topic = f"{names}-topic"
    sent = make_messages(topic, 16, tags=["a", "b", "c", None])
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)

    wanted = [i for i, m in enumerate(sent) if m.tags in ("a", "b")]
    consumer = rust.start_consume(
        pocketmq.namesrv_addr, topic, f"{names}-cg", len(wanted), expr="a || b", timeout=40, linger=2.0
    )
    received = received_messages(consumer, timeout=60)
    assert sorted({m["tags"] for m in received}) == ["a", "b"]
    assert_received_intact(topic, [sent[i] for i in wanted], received, [results[i] for i in wanted], pocketmq)


def test_batch_send(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """One batch (request code 320) of messages with tags, keys and properties: stored consecutively in one queue,
    each delivered once and intact, with the per-message ids the batch send result listed."""
    topic = f"{names}-topic"
    sent = make_messages(topic, 10, tags=["a", "b"])
    (result,) = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent, batch=True)
    assert result["status"] == "SendOk" and result["count"] == len(sent), result
    msg_ids = result["msgId"].split(",")
    offset_ids = result["offsetMsgId"].split(",")
    assert len(msg_ids) == len(offset_ids) == len(sent), result
    assert all(HEX32.fullmatch(x) for x in msg_ids + offset_ids), result

    consumer = rust.start_consume(pocketmq.namesrv_addr, topic, f"{names}-cg", len(sent), timeout=40, linger=1.0)
    received = received_messages(consumer, timeout=60)
    per_message = [
        {"msgId": msg_ids[i], "offsetMsgId": offset_ids[i], "queueId": result["queueId"],
         "queueOffset": result["queueOffset"] + i}
        for i in range(len(sent))
    ]  # fmt: skip
    assert_received_intact(topic, sent, received, list(per_message), pocketmq)

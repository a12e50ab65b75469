"""The stock Java client (org.apache.rocketmq:rocketmq-client 4.9.8 and 5.3.3) against a running pocketmq.

Each test drives real client JVMs through ``compat_tests/java`` (see java_driver.py) and asserts on what the client
actually received: bodies byte-equal, tags, keys, user properties, ids, queue positions and counts.
Run: ``pytest compat_tests/test_java.py`` (needs java + mvn; skipped without them unless ``CI`` is set).
"""

from __future__ import annotations

import base64
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import PocketMQ
from compat_tests.java_driver import CLIENT_VERSIONS, JavaClient, Message

pytestmark = [
    pytest.mark.compat,
    pytest.mark.slow,
]

UNICODE_VALUE = "ünïcødé ✓ 日本語 a=b;c:d"


@pytest.fixture(params=CLIENT_VERSIONS, ids=[f"java-{v}" for v in CLIENT_VERSIONS])
def client(
    request: pytest.FixtureRequest, java_builds: dict[str, tuple[str, str]], tmp_path: Path
) -> Iterator[JavaClient]:
    java, classpath = java_builds[request.param]
    driver = JavaClient(java=java, version=request.param, classpath=classpath, work_dir=tmp_path / "java")
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def names(request: pytest.FixtureRequest, client: JavaClient) -> str:
    """Topic/group name prefix unique per test, version and run (``pid`` keeps reruns on one server apart)."""
    base = request.node.originalname.removeprefix("test_").replace("_", "-")
    return f"j{client.version.replace('.', '')}-{base}-{os.getpid()}"


# --------------------------------------------------------------------------- helpers


def make_messages(prefix: str, count: int, tags: list[str | None] | None = None) -> list[Message]:
    """Distinct binary bodies (every byte value appears), two keys each, and user properties."""
    rng = random.Random(prefix)
    out = []
    for i in range(count):
        body = f"{prefix}#{i}|".encode() + bytes(range(256)) + rng.randbytes(rng.randrange(0, 200))
        tag = tags[i % len(tags)] if tags else f"tag{i % 3}"
        out.append(
            Message(
                body=body,
                tags=tag,
                keys=[f"{prefix}-key-{i}", f"{prefix}-shared"],
                props={"pmqIndex": str(i), "pmqText": UNICODE_VALUE, "pmq-prefix": prefix},
            )
        )
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def by_body(received: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for m in received:
        index.setdefault(m["body"], []).append(m)
    return index


def assert_received_intact(
    topic: str,
    sent: list[Message],
    received: list[dict[str, Any]],
    results: list[dict[str, Any]] | None,
    server: PocketMQ,
    allow_duplicates: bool = False,
) -> None:
    """Every sent message arrived exactly as sent (and, when results are given, where the send said it went)."""
    index = by_body(received)
    missing = [i for i, m in enumerate(sent) if b64(m.body) not in index]
    assert not missing, f"{len(missing)} of {len(sent)} messages never arrived (indexes {missing[:20]})"
    for i, msg in enumerate(sent):
        copies = index[b64(msg.body)]
        if not allow_duplicates:
            assert len(copies) == 1, f"message {i} delivered {len(copies)} times"
        got = copies[0]
        where = f"message {i} ({msg.tags})"
        assert got["topic"] == topic, where
        assert got["tags"] == msg.tags, where
        assert got["keys"] == msg.keys, where
        assert got["props"] == msg.props, f"{where}: user properties differ; all properties {got['allProps']}"
        assert got["reconsumeTimes"] == 0, where
        assert got["storeHost"] == server.broker_addr, f"{where}: store host"
        # The broker records the sender's address as seen on the connection (clients connect over loopback).
        assert got["bornHost"].startswith("127.0.0.1:"), f"{where}: born host {got['bornHost']}"
        now_ms = time.time() * 1000
        assert abs(got["bornTimestamp"] - now_ms) < 600_000, f"{where}: born timestamp {got['bornTimestamp']}"
        assert got["bornTimestamp"] - 1000 <= got["storeTimestamp"] <= now_ms + 1000, f"{where}: store timestamp"
        if results is not None:
            res = results[i]
            if got["msgId"] != res["msgId"] and res.get("batchMsgId"):
                # Batch items keep their own UNIQ_KEY on 4.x brokers (and per protocol/messages.md §5); an Apache
                # 5.x broker appends the batch-level properties to every item, so with a 5.x client (which puts a
                # UNIQ_KEY on the batch itself) all items of a batch surface with that one batch-level id.
                batch_ids = {
                    index[b64(sent[j].body)][0]["msgId"]
                    for j, r in enumerate(results)
                    if r.get("batchMsgId") == res["batchMsgId"]
                }
                assert len(batch_ids) == 1, f"{where}: batch item msgId {got['msgId']} is neither its own nor shared"
            else:
                assert got["msgId"] == res["msgId"], f"{where}: msgId (UNIQ_KEY) differs from the send result"
            if res.get("queueId") is not None:
                assert got["queueId"] == res["queueId"], f"{where}: queueId differs from the send result"
                assert got["queueOffset"] == res["queueOffset"], f"{where}: queueOffset differs from send result"
            if res.get("offsetMsgId"):
                assert got["offsetMsgId"] == res["offsetMsgId"], f"{where}: offsetMsgId differs from send result"
    offsets = [(m["queueId"], m["queueOffset"]) for m in received]
    physical = [m["commitLogOffset"] for m in received]
    if not allow_duplicates:
        assert len(set(offsets)) == len(offsets), "two messages share a (queueId, queueOffset)"
        assert len(set(physical)) == len(physical), "two messages share a commit-log (physical) offset"


def assert_send_ok(results: list[dict[str, Any]], count: int, mode: str) -> None:
    assert [r["index"] for r in results] == list(range(count)), f"{mode}: missing results"
    for r in results:
        if mode == "oneway":
            assert r["status"] == "ok"
            continue
        assert r["status"] == "SEND_OK", r
        assert r["msgId"] and r["offsetMsgId"], r
        assert len(r["offsetMsgId"]) == 32, f"offset message id is not 32 hex chars: {r['offsetMsgId']!r}"
        assert r["queueId"] is not None and r["queueId"] >= 0
        assert r["queueOffset"] >= 0
    if mode == "sync":
        # One sender, sent in order: offsets within each queue grow with the send order.
        last: dict[int, int] = {}
        for r in results:
            assert r["queueOffset"] > last.get(r["queueId"], -1), f"queue offsets out of order: {r}"
            last[r["queueId"]] = r["queueOffset"]
    if mode == "batch":
        batches: dict[str, list[dict[str, Any]]] = {}
        for r in results:
            batches.setdefault(r["batchOffsetMsgId"], []).append(r)
        for items in batches.values():
            assert len({r["queueId"] for r in items}) == 1, "a batch went to more than one queue"
        assert len({r["offsetMsgId"] for r in results}) == count, "batch offset ids are not one per message"


# --------------------------------------------------------------------------- tests


def test_send_modes_then_push_consume(client: JavaClient, pocketmq: PocketMQ, names: str) -> None:
    """sync, async, oneway and batch sends (tags, keys, user properties); a push consumer gets all intact."""
    topic, group = f"{names}-t", f"{names}-g"
    ns = pocketmq.namesrv_addr
    # name -> (mode, message count, batch size). "backlog" puts > 32 messages in every queue, so the consumer
    # needs several pulls per queue (nextBeginOffset, the 32-message pull limit).
    runs = {
        "sync": ("sync", 5, 0),
        "async": ("async", 5, 0),
        "oneway": ("oneway", 5, 0),
        "batch": ("batch", 5, 0),
        "backlog": ("batch", 160, 40),
    }
    sent = {name: make_messages(f"{names}-{name}", count) for name, (_, count, _) in runs.items()}
    # All producers at once; the first send of each auto-creates the topic through TBW102.
    producers = {
        name: client.start_produce(ns, topic, f"{group}-p", mode, sent[name], batch_size=size)
        for name, (mode, _, size) in runs.items()
    }
    results = {name: p.results() for name, p in producers.items()}
    for name, (mode, count, _) in runs.items():
        assert_send_ok(results[name], count, mode)

    all_sent = [m for name in runs for m in sent[name]]
    all_results = [r for name in runs for r in results[name]]
    consumer = client.start_consume(ns, topic, group, expect=len(all_sent), timeout=60, linger_ms=1500)
    received = consumer.finish()
    ready = [x for x in consumer.lines if x.get("event") == "ready"]
    assert ready and ready[0]["messageModel"] == "CLUSTERING"
    assert_received_intact(topic, all_sent, received, all_results, pocketmq)
    assert len(received) == len(all_sent), "unexpected extra deliveries"


def test_large_and_compressed_bodies(client: JavaClient, pocketmq: PocketMQ, names: str) -> None:
    """Bodies just over 4 KiB (compressed by the client), a compressible 64 KiB and a random 1 MiB arrive intact."""
    topic, group = f"{names}-t", f"{names}-g"
    rng = random.Random(names)
    bodies = [
        (b"0123456789abcdef" * 257)[:4097],  # just over the 4 KiB compression threshold
        ("pocketmq " * 600).encode() + bytes(range(256)),  # ~5.6 KiB, highly compressible
        bytes(rng.randrange(0, 16) for _ in range(65536)),  # 64 KiB, partly compressible
        rng.randbytes(1024 * 1024),  # 1 MiB, incompressible
        b"x",  # a tiny one after the big ones
    ]
    sent = [
        Message(body=b, tags="big", keys=[f"{names}-{i}"], props={"size": str(len(b))}) for i, b in enumerate(bodies)
    ]
    results = client.produce(pocketmq.namesrv_addr, topic, f"{group}-p", "sync", sent)
    assert_send_ok(results, len(sent), "sync")
    received = client.start_consume(pocketmq.namesrv_addr, topic, group, expect=len(sent), timeout=60).finish()
    assert_received_intact(topic, sent, received, results, pocketmq)
    for got in received:
        assert len(base64.b64decode(got["body"])) == int(got["props"]["size"])


def test_tag_subscription(client: JavaClient, pocketmq: PocketMQ, names: str) -> None:
    """A group subscribed to ``a || b`` gets every a/b message and no c; another group on ``c`` gets only c."""
    topic = f"{names}-t"
    ns = pocketmq.namesrv_addr
    sent = make_messages(names, 18, tags=["a", "b", "c"])
    results = client.produce(ns, topic, f"{names}-p", "sync", sent)
    assert_send_ok(results, len(sent), "sync")
    ab = [(m, r) for m, r in zip(sent, results, strict=True) if m.tags in ("a", "b")]
    c = [(m, r) for m, r in zip(sent, results, strict=True) if m.tags == "c"]

    consumer_ab = client.start_consume(ns, topic, f"{names}-gab", expect=len(ab), expr="a || b", linger_ms=2000)
    consumer_c = client.start_consume(ns, topic, f"{names}-gc", expect=len(c), expr="c", linger_ms=2000)
    got_ab, got_c = consumer_ab.finish(), consumer_c.finish()

    assert sorted({m["tags"] for m in got_ab}) == ["a", "b"], "a || b subscriber got other tags"
    assert_received_intact(topic, [m for m, _ in ab], got_ab, [r for _, r in ab], pocketmq)
    assert len(got_ab) == len(ab)
    assert {m["tags"] for m in got_c} == {"c"}, "c subscriber got other tags"
    assert_received_intact(topic, [m for m, _ in c], got_c, [r for _, r in c], pocketmq)
    assert len(got_c) == len(c)


def test_auto_create_topic(client: JavaClient, pocketmq: PocketMQ, names: str) -> None:
    """Sending to a topic nobody created works (TBW102 route, broker auto-create) and it is consumable."""
    topic, group = f"{names}-never-created", f"{names}-g"
    sent = make_messages(names, 8)
    results = client.produce(pocketmq.namesrv_addr, topic, f"{group}-p", "sync", sent)
    assert_send_ok(results, len(sent), "sync")
    assert all(r["brokerName"] for r in results)
    # The producer spreads over the new topic's queues (Java clients ask for 4 when auto-creating).
    assert len({r["queueId"] for r in results}) > 1, f"all sends went to one queue: {results}"
    received = client.start_consume(pocketmq.namesrv_addr, topic, group, expect=len(sent), timeout=60).finish()
    assert_received_intact(topic, sent, received, results, pocketmq)


def test_consumer_survives_broker_restart(client: JavaClient, pocketmq: PocketMQ, names: str) -> None:
    """A running consumer loses nothing across a broker restart; a new one resumes at the committed offsets."""
    topic, group = f"{names}-t", f"{names}-g"
    ns = pocketmq.namesrv_addr
    batch1 = make_messages(f"{names}-one", 10)
    batch2 = make_messages(f"{names}-two", 10)
    results1 = client.produce(ns, topic, f"{group}-p", "sync", batch1)
    assert_send_ok(results1, len(batch1), "sync")

    # Heartbeats every 5 s instead of 30 s: after the restart the broker only learns the group's subscription
    # from a heartbeat (the push consumer does not send it with pulls), so this only shortens the test.
    # (A 4.9.8 client waits out its 30 s pull timeout for long polls that were held when the broker went away:
    # unlike 5.x it does not fail requests fast when their connection closes. So this test can take ~35 s.)
    consumer = client.start_consume(ns, topic, group, expect=len(batch1) + len(batch2), timeout=120, heartbeat_ms=5000)
    assert consumer.wait_bodies([m.body for m in batch1], timeout=60), (
        f"batch 1 not consumed before the restart\n{consumer.describe()}"
    )
    pocketmq.restart()
    results2 = client.produce(ns, topic, f"{group}-p", "sync", batch2, retry_seconds=60)
    assert_send_ok(results2, len(batch2), "sync")
    received = consumer.finish()
    done = [x for x in consumer.lines if x.get("event") == "done"]
    assert done and done[0]["complete"], f"consumer gave up: {done}\n{consumer.describe()}"
    assert_received_intact(topic, batch1 + batch2, received, results1 + results2, pocketmq, allow_duplicates=True)

    # That consumer has shut down, committing its offsets. After another restart a new consumer of the same group
    # resumes from the committed offsets: it gets all of batch 3, and nothing of batch 1 (committed long before).
    # The tail of batch 2 may come again: a 5.x client's last commit at shutdown can be lost even on Apache brokers.
    pocketmq.restart()
    batch3 = make_messages(f"{names}-three", 8)
    results3 = client.produce(ns, topic, f"{group}-p", "sync", batch3, retry_seconds=60)
    assert_send_ok(results3, len(batch3), "sync")
    resumed = client.start_consume(ns, topic, group, expect=10**6, timeout=120).collect([m.body for m in batch3], 60)
    old_bodies = {b64(m.body) for m in batch1}
    replayed = [m for m in resumed if m["body"] in old_bodies]
    assert not replayed, (
        f"the group's committed offsets did not survive the restart: {len(replayed)} batch-1 messages came again "
        f"(queue/offset {sorted((m['queueId'], m['queueOffset']) for m in replayed)})"
    )
    assert_received_intact(topic, batch3, resumed, results3, pocketmq, allow_duplicates=True)

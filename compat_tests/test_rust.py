"""The Rust client from crates.io (``rocketmq-client-rust``, mxsm/rocketmq-rust) against a running pocketmq.

It is the strictest parser of the clients (protocol/clients.md §6): JSON headers deserialised into structs with
required fields, quoted route keys. Each test drives real processes of ``compat_tests/rust`` (see rust_driver.py)
and asserts on what the client actually received: bodies byte-equal (1 MiB ones included), tags, keys, user
properties, ids, queue positions, order, counts and timing. Covered: sync sends (request code 10, or 310 with the
client's smart-message switch), async (callback) and oneway sends, batches (320), tag subscriptions, ordered sends
with a queue selector + the orderly listener, delay levels and TIMER_DELIVER_MS, broadcasting, clustering across
three consumer processes, offsets resumed by a new process, the lite pull consumer, query by key and view by id,
request-reply, auto-created topics, retries through ``%RETRY%<group>``, dead letters, transactions (commit,
rollback, UNKNOWN answered by the broker's checks) and a producer without a server.

The concurrent listener runs on the client runtime's bounded blocking lane (rocketmq-runtime 1.0.0: 2 x cores
running + 8 x cores queued, blocking/policy.rs); a consume request refused admission is treated by the client as a
failed consume and sent back to %RETRY% unseen (consume_message_concurrently_service.rs:748-795), with any broker.
So no test here hands one concurrent consumer more than ~12 messages at once (20 in flight on 2 cores is the limit).

Two servers per module: the default one, and a fast one (every delay level 1 s, transactions checked after 2 s
and every 1 s, through broker.conf) for retries, dead letters and transactions.
Run: ``pytest compat_tests/test_rust.py -s`` (needs cargo; skipped without it unless ``CI`` is set; the first run
builds the driver, ~4-5 minutes cold on 2 cores; ``-s`` shows the build time and the observed delivery lateness).
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.driver_process import DriverProcess
from compat_tests.harness import PocketMQ
from compat_tests.rust_driver import Message, RustClient, TxMessage

# The first test also waits for the session's cargo build (~4 min cold on 2 cores, bounded by rust_driver's own
# 540 s limit); every test body bounds its driver processes itself (<= 60 s each).
pytestmark = [pytest.mark.compat, pytest.mark.slow, pytest.mark.timeout(600)]

UNICODE_VALUE = "ünïcødé ✓ 日本語 a=b;c:d"
MIB = 1024 * 1024
# Properties the client or the broker add on the way (everything else must be exactly what was sent).
SYSTEM_PROPS = {"KEYS", "TAGS", "WAIT", "UNIQ_KEY", "MIN_OFFSET", "MAX_OFFSET", "CONSUME_START_TIME", "CLUSTER"}
HEX32 = re.compile(r"[0-9A-F]{32}")
DELAY_LEVEL_2_MS = 5_000  # the default messageDelayLevel's level 2
FAST_DELAY_MS = 1_000  # every delay level of the fast server (so every retry of a concurrent consumer)
TX_TIMEOUT_MS = 2_000  # the fast server's transactionTimeOut: the first check of a pending half message
TX_INTERVAL_MS = 1_000  # its transactionCheckInterval: the checks after that
FAST_BROKER_CONF = f"""\
brokerClusterName=DefaultCluster
brokerName=broker-a
transactionTimeOut={TX_TIMEOUT_MS}
transactionCheckInterval={TX_INTERVAL_MS}
messageDelayLevel={" ".join(["1s"] * 18)}
"""
DELAY_PROPS = {"REAL_TOPIC", "REAL_QID"}  # kept on a delivered delay-level message (ScheduleMessageService)
CLOCK_SLACK_MS = 50  # ms rounding and clock reads across processes (one machine, one clock)
# Due -> received: the broker hands a due message over at once and wakes the held long poll; generous for two
# busy cores.
LATE_BOUND_MS = 3_000
NO_SERVER_BOUND_S = 20
QUEUES = 4  # of an auto-created topic (the client asks for defaultTopicQueueNums = 4)
TX_INTERNAL = {"TRAN_MSG", "REAL_TOPIC", "REAL_QID", "TRANSACTION_CHECK_TIMES", "__transactionId__"}
TRANSACTION_COMMIT_TYPE = 0x8
TRANSACTION_TYPE_MASK = 0xC


@pytest.fixture(scope="module")
def fastmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketMQ]:
    """A pocketmq of its own: every delay level 1 s (retries), transactions checked after 2 s and every 1 s."""
    base = Path(tmp_path_factory.mktemp("pocketmq-fast"))
    conf = base / "broker.conf"
    conf.write_text(FAST_BROKER_CONF)
    server = PocketMQ(data_dir=base / "data", extra_args=["--config", str(conf)])
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
    system: set[str] = SYSTEM_PROPS,
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
        user = {k: v for k, v in got["allProps"].items() if k not in system}
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


def test_sql92_subscription(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """``subscribe_with_selector(MessageSelector::by_sql(..))``: exactly the messages whose user properties match
    (numbers compared as numbers, BETWEEN, IS NOT NULL, a unicode string; a missing property is no match) arrive,
    none of the others within the linger; the broker does the filtering."""
    topic = f"{names}-topic"
    expr = "(color = 'red' AND n BETWEEN 2 AND 12) OR vip IS NOT NULL OR label = 'ünïcødé ✓'"
    sent = make_messages(topic, 24, tags=["a", None])
    for i, m in enumerate(sent[:18]):
        m.props |= {"color": ("red", "blue", "green")[i % 3], "n": str(i)}
    extra = [{"color": "green", "n": "99", "vip": "yes"}, {"vip": "0"}, {"label": "ünïcødé ✓", "n": "1"},
             {"label": "unicode ✓", "color": "red"}, {}, {"color": "red", "n": "13"}]  # fmt: skip
    for m, props in zip(sent[18:], extra, strict=True):
        m.props |= props
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)
    wanted = [3, 6, 9, 12, 18, 19, 20]
    consumer = rust.start_consume(
        pocketmq.namesrv_addr, topic, f"{names}-cg", len(wanted), expr=expr, expr_type="SQL92", timeout=40, linger=3
    )
    received = received_messages(consumer, timeout=60)
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


# ------------------------------------------------------------------------------------------- sends and consumers


def assert_async_sent_ok(results: list[dict[str, Any]], count: int, topic: str) -> list[dict[str, Any]]:
    """One callback result per message (in completion order, so offsets need not follow the send order)."""
    by_index = sorted(results, key=lambda r: r["index"])
    assert [r["index"] for r in by_index] == list(range(count)), f"missing or repeated callbacks: {results}"
    for r in by_index:
        assert r["async"] and r["status"] == "SendOk" and r["topic"] == topic, r
        assert HEX32.fullmatch(r["msgId"] or "") and HEX32.fullmatch(r["offsetMsgId"] or ""), r
    positions = {(r["queueId"], r["queueOffset"]) for r in by_index}
    assert len(positions) == count, f"two sends report the same queue position: {results}"
    assert len({r["msgId"] for r in by_index}) == count, "two sends report the same msgId"
    return by_index


@pytest.mark.parametrize("mode", ["async", "oneway"])
def test_async_and_oneway_sends(pocketmq: PocketMQ, rust: RustClient, names: str, mode: str) -> None:
    """``send_with_callback`` (every callback reports SendOk) and ``send_oneway`` (no result): everything sent
    arrives exactly once, intact, and where the async send results said."""
    topic = f"{names}-topic"
    sent = make_messages(topic, 12, tags=["a", "b", None])
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent, mode=mode)
    if mode == "async":
        per_message: list[dict[str, Any] | None] = list(assert_async_sent_ok(results, len(sent), topic))
    else:
        assert [r["index"] for r in results] == list(range(len(sent))) and all(r["oneway"] for r in results)
        assert not any("status" in r for r in results), "a oneway send reported a result"
        per_message = [None] * len(sent)
    consumer = rust.start_consume(pocketmq.namesrv_addr, topic, f"{names}-cg", len(sent), timeout=40, linger=1.5)
    received = received_messages(consumer, timeout=60)
    assert_received_intact(topic, sent, received, per_message, pocketmq)


def test_ordered_send_and_orderly_consume(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """``send_with_selector`` by order key puts each key's messages in one queue, in send order; the orderly
    listener (queues locked on the broker) gets every key's steps exactly once, strictly in order."""
    topic = f"{names}-topic"
    keys, steps = 6, 8
    sent = [
        Message(topic=topic, body=f"{names}|k{k}|{s}".encode(), tags=f"k{k}", keys=[f"k{k}", f"k{k}#{s}"],
                props={"pmqKey": f"k{k}", "pmqStep": str(s)}, order_key=f"order-k{k}")
        for s in range(steps) for k in range(keys)
    ]  # fmt: skip
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)
    queue_of: dict[str, int] = {}
    for r, m in zip(results, sent, strict=True):
        assert r["orderKey"] == m.order_key, r
        assert queue_of.setdefault(m.props["pmqKey"], r["queueId"]) == r["queueId"], f"a key changed queue: {r}"
    assert len(set(queue_of.values())) > 1, f"every key went to one queue: {queue_of}"

    consumer = rust.start_consume(
        pocketmq.namesrv_addr, topic, f"{names}-cg", len(sent), timeout=40, linger=1.5, orderly=True
    )
    received = received_messages(consumer, timeout=60)
    assert_received_intact(topic, sent, received, list(results), pocketmq)
    by_key: dict[str, list[int]] = {}
    for m in received:
        assert m["queueId"] == queue_of[m["allProps"]["pmqKey"]], m
        by_key.setdefault(m["allProps"]["pmqKey"], []).append(int(m["allProps"]["pmqStep"]))
    assert by_key == {f"k{k}": list(range(steps)) for k in range(keys)}, f"out of order: {by_key}"


def delivered_late_ms(received: dict[str, Any], due_ms: int) -> int:
    late = received["receivedAt"] - due_ms
    assert late >= -CLOCK_SLACK_MS, f"delivered {-late} ms before it was due: {received}"
    assert late <= LATE_BOUND_MS, f"delivered {late} ms after it was due: {received}"
    return late


def test_delay_level(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """``delay_level(2)`` (5 s by the default messageDelayLevel): not delivered before it is due, soon after,
    intact, with the properties Apache's ScheduleMessageService leaves (REAL_TOPIC/REAL_QID kept, DELAY gone)."""
    topic = f"{names}-topic"
    warm = make_messages(f"{topic}-warm", 1, tags=["w"])
    warm[0].topic = topic
    delayed = make_messages(topic, 3, tags=["d"])
    for m in delayed:
        m.delay_level = 2
    # The consumer is already pulling (a warm-up message proves it) when the delayed messages are sent.
    rust.produce(pocketmq.namesrv_addr, f"{names}-pg", warm)
    consumer = rust.start_consume(pocketmq.namesrv_addr, topic, f"{names}-cg", 1 + len(delayed), timeout=40)
    consumer.wait_for(lambda ls: any(x.get("event") == "received" for x in ls), 30, "the warm-up message")
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", delayed)
    assert_sent_ok(results, len(delayed), topic)
    received = [m for m in received_messages(consumer, timeout=60) if m["tags"] == "d"]
    assert_received_intact(topic, delayed, received, [None] * len(delayed), pocketmq, SYSTEM_PROPS | DELAY_PROPS)
    by_body = {m["body"]: m for m in received}
    lateness = []
    for m, r in zip(delayed, results, strict=True):
        got = by_body[b64(m.body)]
        # Due 5 s after it was stored, i.e. between sentAt and sentAt + ms (the send's round trip) plus 5 s.
        late = got["receivedAt"] - (r["sentAt"] + DELAY_LEVEL_2_MS)
        assert -CLOCK_SLACK_MS <= late <= r["ms"] + LATE_BOUND_MS, f"delivered {late} ms after sentAt + 5 s: {got}"
        lateness.append(late)
        assert got["allProps"].get("REAL_TOPIC") == topic and "DELAY" not in got["allProps"], got["allProps"]
        assert got["msgId"] == r["msgId"], got
    print(f"\n[rust] delay level 2: delivered {lateness} ms after due")


def test_deliver_time(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """``deliver_time_ms`` (TIMER_DELIVER_MS) 2-4 s ahead: each message arrives at its time, not before, intact,
    TIMER_DELIVER_MS kept and REAL_TOPIC/REAL_QID gone (as from Apache's timer store)."""
    topic = f"{names}-topic"
    warm = make_messages(topic, 1, tags=["w"])
    timed = make_messages(f"{topic}-t", 3, tags=["t"])
    for i, m in enumerate(timed):
        m.topic = topic
        m.deliver_after_ms = 4000 - 1000 * i  # the last one sent is due first
    rust.produce(pocketmq.namesrv_addr, f"{names}-pg", warm)
    consumer = rust.start_consume(pocketmq.namesrv_addr, topic, f"{names}-cg", 1 + len(timed), timeout=40)
    consumer.wait_for(lambda ls: any(x.get("event") == "received" for x in ls), 30, "the warm-up message")
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", timed)
    assert_sent_ok(results, len(timed), topic)
    received = received_messages(consumer, timeout=60)
    timed_received = [m for m in received if m["tags"] == "t"]
    by_body = {m["body"]: m for m in timed_received}
    lateness = []
    for m, r in zip(timed, results, strict=True):
        got = by_body[b64(m.body)]
        due = int(got["allProps"]["TIMER_DELIVER_MS"])
        assert r["sentAt"] - 1000 <= due - m.deliver_after_ms <= r["sentAt"], f"TIMER_DELIVER_MS {due}: {r}"
        lateness.append(delivered_late_ms(got, due))
        assert not {"REAL_TOPIC", "REAL_QID"} & got["allProps"].keys(), got["allProps"]
        assert got["msgId"] == r["msgId"], got
        user = {k: v for k, v in got["allProps"].items() if k not in SYSTEM_PROPS | {"TIMER_DELIVER_MS"}}
        assert user == m.props and got["keys"] == m.keys and got["bodyLen"] == len(m.body), got
    assert received[0]["tags"] == "w"
    order = [m["allProps"]["pmqIndex"] for m in timed_received]
    assert order == ["2", "1", "0"], f"not delivered in due order: {order}"
    print(f"\n[rust] deliver time: delivered {lateness} ms after due")


def test_broadcast(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """Two broadcasting consumers of one group each get every message exactly once, intact."""
    topic = f"{names}-topic"
    sent = make_messages(topic, 10, tags=["a", "b"])
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)
    consumers = [
        rust.start_consume(pocketmq.namesrv_addr, topic, f"{names}-cg", len(sent), timeout=40, linger=1.5,
                           model="broadcasting")
        for _ in range(2)
    ]  # fmt: skip
    for consumer in consumers:
        assert_received_intact(topic, sent, received_messages(consumer, timeout=60), list(results), pocketmq)


def test_auto_create_topic(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """Sending to a topic nobody created: the client falls back to TBW102's route, the broker creates the topic,
    sends spread over its queues, and it is consumable."""
    topic = f"{names}-never-created"
    sent = make_messages(topic, 8, tags=["a"])
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)
    assert len({r["queueId"] for r in results}) > 1, f"all sends went to one queue: {results}"
    consumer = rust.start_consume(pocketmq.namesrv_addr, topic, f"{names}-cg", len(sent), timeout=40)
    assert_received_intact(topic, sent, received_messages(consumer, timeout=60), list(results), pocketmq)


def latest_allocation(consumer: DriverProcess, topic: str) -> set[int] | None:
    allocations = [x for x in consumer.events("allocation") if x["topic"] == topic]
    return set(allocations[-1]["queues"]) if allocations else None


def wait_split(consumers: list[DriverProcess], topic: str, timeout: float) -> float:
    """Until every consumer holds some queues of ``topic``, no queue twice, all of them held; the seconds it took."""
    started = time.monotonic()
    while True:
        held = [latest_allocation(c, topic) for c in consumers]
        if all(held) and sum(len(h or ()) for h in held) == len(set().union(*(h or set() for h in held))) == QUEUES:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"the group never split the queues: {held}\n" + consumers[0].describe())
        time.sleep(0.1)


def test_clustering_shares_queues(pocketmq: PocketMQ, rust: RustClient, names: str, tmp_path: Path) -> None:
    """Three consumers of one group split the topic's queues: every message is consumed exactly once by the group,
    each consumer only from its own queues, and every consumer gets some."""
    topic, group = f"{names}-topic", f"{names}-cg"
    warm = make_messages(topic, 4, tags=["w"])
    rust.produce(pocketmq.namesrv_addr, f"{names}-pg", warm)  # the topic exists before the consumers start
    stop = tmp_path / "stop-consumers"
    consumers = [
        rust.start_consume(pocketmq.namesrv_addr, topic, group, 0, timeout=60, expr="a || b", stop_file=stop)
        for _ in range(3)
    ]
    # Sent only once the group is stable: the consumers' latest allocations split the topic's queues.
    settled_in = wait_split(consumers, topic, timeout=30)
    print(f"\n[rust] clustering: 3 consumers split the queues {settled_in:.1f} s after starting")
    sent = make_messages(topic, 24, tags=["a", "b"])
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)
    deadline = time.monotonic() + 30
    while sum(len(c.events("received")) for c in consumers) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # duplicates would show up now
    # What each consumer held while consuming: once one stops (unregisters), the others rebalance.
    held = [set().union(*(set(x["queues"]) for x in c.events("allocation") if x["topic"] == topic)) for c in consumers]
    stop.touch()
    per_consumer = [received_messages(c, timeout=40) for c in consumers]
    assert_received_intact(topic, sent, [m for ms in per_consumer for m in ms], list(results), pocketmq)
    queues = [{m["queueId"] for m in ms} for ms in per_consumer]
    assert all(queues), f"a consumer got nothing: queues {queues}"
    assert sum(len(q) for q in queues) == len(set().union(*queues)), f"consumers shared a queue: {queues}"
    for got, mine in zip(queues, held, strict=True):
        assert got <= mine, f"consumed from queues {got}, held only {mine} before the consumers stopped"


def test_committed_offsets_resume_in_a_new_process(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """A consumer process consumes a first batch and exits; a new process of the group gets exactly the messages
    sent after that (the committed offsets), none of the first batch again."""
    topic, group = f"{names}-topic", f"{names}-cg"
    first = make_messages(f"{topic}-1", 8, tags=["a"])
    second = make_messages(f"{topic}-2", 6, tags=["a"])
    for m in first + second:
        m.topic = topic
    results1 = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", first)
    consumer = rust.start_consume(pocketmq.namesrv_addr, topic, group, len(first), timeout=40)
    assert_received_intact(topic, first, received_messages(consumer, timeout=60), list(results1), pocketmq)
    results2 = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", second)
    consumer = rust.start_consume(pocketmq.namesrv_addr, topic, group, len(second), timeout=40, linger=2.5)
    assert_received_intact(topic, second, received_messages(consumer, timeout=60), list(results2), pocketmq)


def test_lite_pull_consumer(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """DefaultLitePullConsumer (subscribe, poll, commit_sync): every message once, intact; a new process of the
    group resumes at the committed offsets."""
    topic, group = f"{names}-topic", f"{names}-cg"
    first = make_messages(f"{topic}-1", 10, tags=["a", "b"])
    second = make_messages(f"{topic}-2", 5, tags=["a"])
    for m in first + second:
        m.topic = topic
    results1 = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", first)
    puller = rust.start_pull(pocketmq.namesrv_addr, topic, group, len(first), timeout=40)
    assert_received_intact(topic, first, received_messages(puller, timeout=60), list(results1), pocketmq)
    results2 = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", second)
    puller = rust.start_pull(pocketmq.namesrv_addr, topic, group, len(second), timeout=40, linger=2.5)
    assert_received_intact(topic, second, received_messages(puller, timeout=60), list(results2), pocketmq)


def test_query_by_key_and_id(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """``query_message`` by key (QUERY_MESSAGE) finds exactly the messages carrying it; ``view_message`` by the
    offset message id (VIEW_MESSAGE_BY_ID) returns that message, intact."""
    topic = f"{names}-topic"
    sent = make_messages(topic, 6, tags=["a", "b"])
    results = rust.produce(pocketmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)
    found = rust.query(pocketmq.namesrv_addr, f"{names}-qg", topic, key=f"{topic}-shared")
    assert all(m["by"] == "key" for m in found)
    assert sorted(m["body"] for m in found) == sorted(b64(m.body) for m in sent), "query by the shared key"
    for m in found:
        i = int(m["allProps"]["pmqIndex"])
        assert (m["msgId"], m["extMsgId"]) == (results[i]["msgId"], results[i]["offsetMsgId"]), m
        assert m["keys"] == sent[i].keys and m["tags"] == sent[i].tags, m
    found = rust.query(
        pocketmq.namesrv_addr, f"{names}-qg", topic, key=f"{topic}-key-3", offset_msg_id=results[4]["offsetMsgId"]
    )
    assert [(m["by"], m["body"]) for m in found] == [("key", b64(sent[3].body)), ("id", b64(sent[4].body))], found
    by_id = found[1]
    assert by_id["msgId"] == results[4]["msgId"] and by_id["extMsgId"] == results[4]["offsetMsgId"], by_id
    assert (by_id["queueId"], by_id["queueOffset"]) == (results[4]["queueId"], results[4]["queueOffset"]), by_id
    user = {k: v for k, v in by_id["allProps"].items() if k not in SYSTEM_PROPS}
    assert user == sent[4].props and by_id["tags"] == sent[4].tags and by_id["keys"] == sent[4].keys, by_id


def test_request_reply(pocketmq: PocketMQ, rust: RustClient, names: str) -> None:
    """``request()``: a responder (push consumer + MessageUtil::create_reply_message) answers each request and the
    requester gets its own reply (body, correlation id) through the broker's PUSH_REPLY_MESSAGE_TO_CLIENT."""
    topic = f"{names}-topic"
    warm = make_messages(topic, 1, tags=["w"])
    rust.produce(pocketmq.namesrv_addr, f"{names}-pg", warm)  # the responder must find the topic's route
    requests = make_messages(topic, 3, tags=["q"])
    responder = rust.start_consume(
        pocketmq.namesrv_addr, topic, f"{names}-responder", 1 + len(requests), timeout=40, linger=1.0, reply=True
    )
    responder.wait_for(lambda ls: any(x.get("event") == "received" for x in ls), 30, "the warm-up message")
    requester = rust.start_request(pocketmq.namesrv_addr, f"{names}-requester", requests, timeout_ms=10_000)
    lines = requester.join(60)
    replies = [x for x in lines if x["event"] == "reply"]
    served = [m for m in received_messages(responder, timeout=60) if m["tags"] == "q"]
    assert not responder.events("reply-error"), responder.events("reply-error")
    assert [r["index"] for r in replies] == list(range(len(requests))), lines
    for r, m, req in zip(replies, requests, served, strict=True):
        assert r["body"] == b64(b"reply:" + m.body), r
        assert r["topic"] == "DefaultCluster_REPLY_TOPIC" and r["props"]["MSG_TYPE"] == "reply", r
        assert req["body"] == b64(m.body), req
        assert r["props"]["CORRELATION_ID"] == req["allProps"]["CORRELATION_ID"], (r, req)
        assert r["props"]["REPLY_TO_CLIENT"] == req["allProps"]["REPLY_TO_CLIENT"], (r, req)
        assert r["ms"] < 5000, f"reply after {r['ms']} ms"


def test_no_server_fails_cleanly(rust: RustClient, names: str) -> None:
    """A producer pointed at a closed port fails its send with an error, exits with status 1, within a bound."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        namesrv = f"127.0.0.1:{s.getsockname()[1]}"
        started = time.monotonic()
        proc = rust.start_produce(namesrv, f"{names}-pg", make_messages(f"{names}-t", 1, [None]), timeout_ms=3000)
        rc = proc.proc.wait(timeout=60)
        seconds = time.monotonic() - started
    assert rc == 1, f"exit status {rc}\n{proc.describe()}"
    assert not proc.events("sent"), proc.describe()
    (error,) = proc.events("error")
    assert error["stage"] == "produce" and "send of message 0" in error["error"], error
    assert seconds < NO_SERVER_BOUND_S, f"took {seconds:.1f} s to fail"


# --------------------------------------------------------------------------------- retries (fast delay levels)


def deliveries_by_body(received: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in received:
        out.setdefault(m["body"], []).append(m)
    return out


def assert_redelivered(sent: Message, deliveries: list[dict[str, Any]], fails: int, topic: str) -> None:
    """``fails`` RECONSUME_LATER answers then a success: reconsume times 0..fails, one retry delay apart, the same
    message (msgId, body, tags, keys, user properties) every time, under its own topic."""
    assert [d["reconsumeTimes"] for d in deliveries] == list(range(fails + 1)), deliveries
    assert [d.get("status") for d in deliveries] == ["later"] * fails + [None], deliveries
    for d in deliveries:
        assert d["topic"] == topic and d["msgId"] == deliveries[0]["msgId"], d
        assert d["tags"] == sent.tags and d["keys"] == sent.keys and d["bodyLen"] == len(sent.body), d
        assert {k: d["allProps"].get(k) for k in sent.props} == sent.props, d["allProps"]
    for a, b in itertools.pairwise(deliveries):
        gap = b["receivedAt"] - a["receivedAt"]
        assert FAST_DELAY_MS - CLOCK_SLACK_MS <= gap <= FAST_DELAY_MS + LATE_BOUND_MS, f"retry after {gap} ms: {b}"


def test_reconsume_later_redelivers(fastmq: PocketMQ, rust: RustClient, names: str) -> None:
    """RECONSUME_LATER: the client sends the message back (CONSUMER_SEND_MSG_BACK) and it returns through
    ``%RETRY%<group>`` after the retry delay with reconsume times 1, 2, ... until the listener accepts it."""
    topic = f"{names}-topic"
    sent = make_messages(topic, 3, tags=["a"])
    fails = [1, 2, 0]
    for m, f in zip(sent, fails, strict=True):
        m.props["pmqFailTimes"] = str(f)
    results = rust.produce(fastmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)
    consumer = rust.start_consume(
        fastmq.namesrv_addr, topic, f"{names}-cg", sum(fails) + len(sent), timeout=40, linger=2.0, fail=True
    )
    by_body = deliveries_by_body(received_messages(consumer, timeout=60))
    assert set(by_body) == {b64(m.body) for m in sent}
    for m, f, r in zip(sent, fails, results, strict=True):
        assert_redelivered(m, by_body[b64(m.body)], f, topic)
        assert by_body[b64(m.body)][0]["msgId"] == r["msgId"]


def test_dead_letter_queue(fastmq: PocketMQ, rust: RustClient, names: str) -> None:
    """A message refused more than ``max_reconsume_times`` (1) goes to ``%DLQ%<group>``, where a consumer of that
    topic gets it once, intact, with its original msgId; the accepted message does not go there."""
    topic, group = f"{names}-topic", f"{names}-cg"
    sent = make_messages(topic, 2, tags=["a"])
    sent[0].props["pmqFailTimes"] = "99"
    results = rust.produce(fastmq.namesrv_addr, f"{names}-pg", sent)
    assert_sent_ok(results, len(sent), topic)
    consumer = rust.start_consume(
        fastmq.namesrv_addr, topic, group, 3, timeout=40, linger=2.0, fail=True, max_reconsume=1
    )
    by_body = deliveries_by_body(received_messages(consumer, timeout=60))
    dead = by_body[b64(sent[0].body)]
    assert [d["reconsumeTimes"] for d in dead] == [0, 1] and all(d["status"] == "later" for d in dead), dead
    assert [d["reconsumeTimes"] for d in by_body[b64(sent[1].body)]] == [0]

    dlq = f"%DLQ%{group}"
    consumer = rust.start_consume(fastmq.namesrv_addr, dlq, f"{names}-dlq-cg", 1, timeout=40, linger=1.5)
    (got,) = received_messages(consumer, timeout=60)
    assert got["topic"] == dlq and got["body"] == b64(sent[0].body), got
    assert got["msgId"] == results[0]["msgId"], got
    assert got["tags"] == sent[0].tags and got["keys"] == sent[0].keys, got
    assert {k: got["allProps"].get(k) for k in sent[0].props} == sent[0].props, got["allProps"]
    assert got["allProps"].get("RETRY_TOPIC") == topic, got["allProps"]
    # As Apache's consumerSendMsgBack: the first delivery's offset id, reconsume times one more than the last.
    assert got["allProps"].get("ORIGIN_MESSAGE_ID") == results[0]["offsetMsgId"], got["allProps"]
    assert got["reconsumeTimes"] == 2, got


# ------------------------------------------------------------------------------------------------- transactions


def tx(names: str, name: str, local: str, checks: list[str] | None = None) -> TxMessage:
    message = Message(
        topic=f"{names}-topic", body=f"{name}|{UNICODE_VALUE}".encode(), tags=f"tag-{local}",
        keys=[f"{name}-key", "shared-key"], props={"pmqText": UNICODE_VALUE, "pmqPlan": local},
    )  # fmt: skip
    return TxMessage(name=name, message=message, local=local, checks=checks or [])


def of(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [x for x in lines if x.get("event") == kind]


def wait_tx_sent(producer: DriverProcess, plan: list[TxMessage]) -> None:
    """Until every send returned (the topic exists then: a consumer started earlier would only find its route at
    the client's next 30 s route poll)."""
    producer.wait_for(lambda ls: len(of(ls, "sent")) == len(plan), 30, "transaction send results")


def assert_tx_sent(lines: list[dict[str, Any]], plan: list[TxMessage]) -> dict[str, dict[str, Any]]:
    sent = {x["name"]: x for x in of(lines, "sent")}
    state = {"commit": "Some(CommitMessage)", "rollback": "Some(RollbackMessage)", "unknown": "Some(Unknown)"}
    for p in plan:
        r = sent[p.name]
        assert r["status"] == "SendOk" and r["state"] == state[p.local], r
        assert HEX32.fullmatch(r["msgId"] or "") and r["transactionId"] == r["msgId"], r
        assert HEX32.fullmatch(r["offsetMsgId"] or ""), r
        (local,) = [x for x in of(lines, "local") if x["name"] == p.name]
        assert local["transactionId"] == r["msgId"], local
    return sent


def assert_committed_consumed(
    consumed: list[dict[str, Any]], committed: dict[str, int], plan: list[TxMessage], sent: dict[str, dict[str, Any]]
) -> None:
    """Exactly the committed messages, once each, intact, not before their commit, without transaction props."""
    by_name = {p.name: p for p in plan}
    names_seen = [m["allProps"].get("pmqName") for m in consumed]
    assert sorted(names_seen) == sorted(committed), f"consumed {names_seen}, committed {sorted(committed)}"
    for m in consumed:
        name = m["allProps"]["pmqName"]
        p = by_name[name].message
        assert m["body"] == b64(p.body) and m["tags"] == p.tags and m["keys"] == p.keys, m
        assert {k: m["allProps"].get(k) for k in p.props} == p.props, m["allProps"]
        assert not TX_INTERNAL & m["allProps"].keys(), f"{name}: transaction properties {m['allProps']}"
        assert m["msgId"] == sent[name]["msgId"], m
        assert m["sysFlag"] & TRANSACTION_TYPE_MASK == TRANSACTION_COMMIT_TYPE, m
        assert m["receivedAt"] >= committed[name] - CLOCK_SLACK_MS, f"{name} consumed before its commit"


def test_transaction_commit(fastmq: PocketMQ, rust: RustClient, names: str) -> None:
    """TransactionMQProducer whose local transactions commit: each message consumed once, intact; none checked."""
    plan = [tx(names, f"c{i}", "commit") for i in range(3)]
    lines = rust.start_txproduce(fastmq.namesrv_addr, f"{names}-pg", plan, wait_checks_ms=0).join(60)
    sent = assert_tx_sent(lines, plan)
    assert not of(lines, "check"), of(lines, "check")
    consumer = rust.start_consume(fastmq.namesrv_addr, f"{names}-topic", f"{names}-cg", len(plan), timeout=40)
    committed = {x["name"]: x["time"] for x in of(lines, "local")}
    assert_committed_consumed(received_messages(consumer, timeout=60), committed, plan, sent)


def test_transaction_rollback(fastmq: PocketMQ, rust: RustClient, names: str) -> None:
    """Rolled-back messages are never delivered nor checked, past the first check time and two intervals."""
    plan = [tx(names, "marker", "commit"), tx(names, "r0", "rollback"), tx(names, "r1", "rollback")]
    observe_ms = TX_TIMEOUT_MS + 2 * TX_INTERVAL_MS + 500
    producer = rust.start_txproduce(fastmq.namesrv_addr, f"{names}-pg", plan, wait_checks_ms=0, stay_ms=observe_ms)
    wait_tx_sent(producer, plan)
    consumer = rust.start_consume(
        fastmq.namesrv_addr, f"{names}-topic", f"{names}-cg", 1, timeout=40, linger=observe_ms / 1000
    )
    lines = producer.join(60)
    sent = assert_tx_sent(lines, plan)
    assert not of(lines, "check"), f"resolved messages were checked: {of(lines, 'check')}"
    committed = {x["name"]: x["time"] for x in of(lines, "local") if x["state"] == "commit"}
    assert_committed_consumed(received_messages(consumer, timeout=60), committed, plan, sent)


def test_transaction_unknown_is_checked(fastmq: PocketMQ, rust: RustClient, names: str) -> None:
    """UNKNOWN from the local transaction: the broker checks after transactionTimeOut and then every interval;
    the listener's check answer decides (commit: delivered once, not before; rollback: never)."""
    plan = [
        tx(names, "marker", "commit"),
        tx(names, "u-first", "unknown", ["commit"]),
        tx(names, "u-second", "unknown", ["unknown", "commit"]),
        tx(names, "u-rollback", "unknown", ["rollback"]),
    ]
    producer = rust.start_txproduce(fastmq.namesrv_addr, f"{names}-pg", plan, wait_checks_ms=30_000)
    wait_tx_sent(producer, plan)
    consumer = rust.start_consume(fastmq.namesrv_addr, f"{names}-topic", f"{names}-cg", 3, timeout=60, linger=2.0)
    lines = producer.join(60)
    sent = assert_tx_sent(lines, plan)
    assert not of(lines, "checks-missing"), producer.describe()
    checks: dict[str, list[dict[str, Any]]] = {}
    for c in of(lines, "check"):
        checks.setdefault(c["name"], []).append(c)
    assert {n: [c["answer"] for c in cs] for n, cs in checks.items()} == {
        "u-first": ["commit"], "u-second": ["unknown", "commit"], "u-rollback": ["rollback"]
    }  # fmt: skip
    for name, cs in checks.items():
        r = sent[name]
        for n, c in enumerate(cs, start=1):
            assert c["transactionId"] == c["msgId"] == r["msgId"], c
            assert c["topic"] == f"{names}-topic" and c["body"] == b64(
                plan[[p.name for p in plan].index(name)].message.body
            )
            assert c["allProps"]["PGROUP"] == f"{names}-pg" and c["allProps"]["TRANSACTION_CHECK_TIMES"] == str(n), c
        first = cs[0]["time"] - cs[0]["storeTimestamp"]
        assert TX_TIMEOUT_MS - 100 <= first <= TX_TIMEOUT_MS + TX_INTERVAL_MS + LATE_BOUND_MS, f"{name}: {first} ms"
        for a, b in itertools.pairwise(cs):
            gap = b["time"] - a["time"]
            assert TX_INTERVAL_MS - 100 <= gap <= TX_INTERVAL_MS + LATE_BOUND_MS, f"{name}: checks {gap} ms apart"
    committed = {x["name"]: x["time"] for x in of(lines, "local") if x["state"] == "commit"}
    committed |= {n: cs[-1]["time"] for n, cs in checks.items() if cs[-1]["answer"] == "commit"}
    assert_committed_consumed(received_messages(consumer, timeout=60), committed, plan, sent)

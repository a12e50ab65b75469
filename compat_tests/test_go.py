"""The stock Go client (github.com/apache/rocketmq-client-go/v2, compat_tests/go) against pocketmq: send modes,
filters, ordering, delay levels, broadcasting, retries and dead letters, request-reply, the pull consumer, large and
compressed bodies, topic auto-creation, clustering, committed offsets and a missing server.

Every producer and consumer is a real Go process (see go_driver.py); the oracle is what the Go consumer printed:
bodies byte-exact, tags, keys, user properties, ids, queues, counts, order and timing bounds. Readiness comes from
the consumer's ``allocated`` events (its allocation strategy reports every new assignment), not from sleeps.
Run: ``pytest compat_tests/test_go.py -s`` (needs go; skipped without it unless ``CI`` is set).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from codec import jsonbody
from codec.codes import RequestCode, ResponseCode
from codec.command import request
from compat_tests.go_driver import DriverProcess, GoClient, Message, body_of
from compat_tests.harness import PocketMQ, free_port
from compat_tests.node_driver import create_topic
from remoting.client import RemotingClient

pytestmark = [pytest.mark.compat, pytest.mark.slow]

Line = dict[str, Any]
TEXT = "ünïcødé ✓ 日本語 a=b;c:d"
COMPRESS_OVER = 4096  # producer.WithCompressMsgBodyOverHowmuch default
COMPRESSED_FLAG = 0x1
DELAY_LEVEL_MS = {1: 1000, 2: 5000}  # the broker's default messageDelayLevel "1s 5s 10s ..."
CLOCK_SLACK_MS = 150


@pytest.fixture
def names(request: pytest.FixtureRequest) -> str:
    base = request.node.name.removeprefix("test_").replace("_", "-").replace("[", "-").rstrip("]")
    return f"go-{base}-{os.getpid()}"


# --------------------------------------------------------------------------- helpers


def of(lines: list[Line], kind: str) -> list[Line]:
    return [x for x in lines if x.get("event") == kind]


def payload(tag: str, i: int, size: int = 0) -> bytes:
    """A binary body (NUL, 0xff, invalid UTF-8) unique to (tag, i), padded to ``size`` when given."""
    head = f"{tag}#{i}|{TEXT}|".encode() + bytes([0, 1, 0xFF, 0xFE, 0x80, i % 256])
    if size <= len(head):
        return head
    filler = hashlib.sha256(head).digest() * (size // 32 + 1)
    return (head + filler)[:size]


def message(tag: str, i: int, **kw: Any) -> Message:
    kw.setdefault("tags", f"tag-{tag}")
    return Message(
        body=payload(tag, i), keys=[f"{tag}-key-{i}", "shared-key"], props={"pmqIndex": str(i), "pmqText": TEXT}, **kw
    )


def assert_intact(got: Line, sent: Message, topic: str) -> None:
    assert body_of(got) == sent.body, f"body differs: {got['body'][:60]}"
    assert got["topic"] == topic, got["topic"]
    assert got["tags"] == (sent.tags or ""), got["tags"]
    assert got["keys"] == sent.keys, got["keys"]
    assert {k: got["props"].get(k) for k in sent.props} == sent.props, got["props"]


def by_index(got: list[Line]) -> dict[int, list[Line]]:
    out: dict[int, list[Line]] = {}
    for m in got:
        out.setdefault(int(m["props"]["pmqIndex"]), []).append(m)
    return out


def consume_all(
    go: GoClient, ns: str, topic: str, group: str, expect: int, linger: float = 1.5, **kw: Any
) -> list[Line]:
    proc = go.start_consume(ns, topic, group, expect=expect, timeout=60, linger=linger, **kw)
    lines = proc.join(90)
    done = of(lines, "done")[-1]
    assert not done["timedOut"], f"only {done['count']} of {expect} messages\n{proc.describe()}"
    return of(lines, "message")


async def _call(addr: str, code: int, ext: dict[str, str]) -> tuple[int, bytes]:
    host, _, port = addr.rpartition(":")
    client = await RemotingClient.connect(host, int(port))
    try:
        response = await client.invoke(request(code, ext), timeout=10)
    finally:
        await client.aclose()
    return response.code, response.body


def routed_queues(namesrv: str, topic: str) -> dict[str, int] | None:
    """The name server's route of ``topic``: read/write queue counts and perm, None when it has none."""
    code, body = anyio.run(_call, namesrv, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic})
    if code != ResponseCode.SUCCESS:
        return None
    [q] = jsonbody.loads(body)["queueDatas"]
    return {"read": q["readQueueNums"], "write": q["writeQueueNums"], "perm": q["perm"]}


def wait_route(namesrv: str, topic: str, timeout: float = 20) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while (route := routed_queues(namesrv, topic)) is None:
        assert time.monotonic() < deadline, f"no route for {topic} within {timeout} s"
        time.sleep(0.2)
    return route


def latest_allocation(proc: DriverProcess, topic: str) -> Line | None:
    found = [x for x in proc.events("allocated") if x["topic"] == topic]
    return found[-1] if found else None


def wait_allocated(procs: list[DriverProcess], topic: str, queues: int, timeout: float = 45) -> None:
    """Until the consumers' latest assignments of ``topic`` name all of them and split its queues between them."""
    deadline = time.monotonic() + timeout
    while True:
        latest = [latest_allocation(p, topic) for p in procs]
        if all(a is not None and a["consumers"] == len(procs) for a in latest):
            owned = sorted(q for a in latest if a is not None for q in a["queues"])
            if owned == list(range(queues)):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: assignments {latest} after {timeout} s\n{procs[0].describe()}")
        time.sleep(0.1)


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def report(what: str, **values: Any) -> None:
    print(f"\n[go] {what}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


# --------------------------------------------------------------------------- send modes


@pytest.mark.parametrize("mode", ["sync", "async", "oneway", "batch"])
def test_send_mode(go: GoClient, pocketmq: PocketMQ, names: str, mode: str) -> None:
    """SendSync / SendAsync / SendOneWay / one SendSync of a batch: a consumer gets every message once, intact, where
    the send result said it was stored."""
    ns, topic = pocketmq.namesrv_addr, f"{names}-t"
    sent_msgs = [message(mode, i, tags=None if i == 3 else f"tag-{i % 3}") for i in range(8)]
    sent = go.produce(ns, topic, f"{names}-pg", sent_msgs, mode=mode)
    got = by_index(consume_all(go, ns, topic, f"{names}-cg", expect=len(sent_msgs)))
    assert sorted(got) == list(range(len(sent_msgs))), f"received indexes {sorted(got)}"
    for i, m in enumerate(sent_msgs):
        [g] = got[i]  # exactly once
        assert_intact(g, m, topic)
        assert g["reconsumeTimes"] == 0 and g["sysFlag"] & COMPRESSED_FLAG == 0
        r = sent[i]
        if mode == "batch":
            # v2.1.2 gives batched messages no client id (UNIQ_KEY): their id is the broker's offset id.
            assert r["msgId"] == "" and g["msgId"] == g["offsetMsgId"] == r["offsetMsgId"], (r, g["msgId"])
        else:
            assert g["msgId"] == r["msgId"] and g["props"]["UNIQ_KEY"] == r["msgId"], (r, g["msgId"])
        if mode != "oneway":
            assert (g["queueId"], g["queueOffset"]) == (r["queueId"], r["queueOffset"]), (r, g)
            assert g["offsetMsgId"] == r["offsetMsgId"], (r, g)
    if mode == "batch":
        assert len({r["queueId"] for r in sent}) == 1, "a batch goes to one queue"
        assert [r["queueOffset"] for r in sent] == list(range(sent[0]["queueOffset"], sent[0]["queueOffset"] + 8))


# --------------------------------------------------------------------------- filters


def test_tag_filter(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """Subscription "a || b": exactly the messages tagged a or b arrive, none tagged c, other or untagged."""
    ns, topic = pocketmq.namesrv_addr, f"{names}-t"
    tags = ["a", "b", "c", None, "ab", "a", "b", "A"]
    msgs = [message("tf", i, tags=t) for i, t in enumerate(tags * 2)]
    go.produce(ns, topic, f"{names}-pg", msgs)
    wanted = [i for i, m in enumerate(msgs) if m.tags in ("a", "b")]
    got = by_index(consume_all(go, ns, topic, f"{names}-cg", expect=len(wanted), expr="a || b"))
    assert sorted(got) == wanted, f"received {sorted(got)}, wanted {wanted}"
    for i in wanted:
        [g] = got[i]
        assert_intact(g, msgs[i], topic)


def test_sql92_filter(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """MessageSelector{Type: SQL92}: properties and TAGS compared by the broker; only matching messages arrive."""
    ns, topic = pocketmq.namesrv_addr, f"{names}-t"
    msgs = []
    for i in range(12):
        m = message("sql", i, tags="red" if i % 2 else "blue")
        m.props |= {"n": str(i), "region": "eu" if i % 3 == 0 else "us"}
        msgs.append(m)
    msgs.append(message("sql", 12, tags="red"))  # no "n": a NULL comparison is false
    go.produce(ns, topic, f"{names}-pg", msgs)
    sql = "n BETWEEN 2 AND 9 AND (region = 'eu' OR TAGS = 'red')"
    wanted = [i for i in range(12) if 2 <= i <= 9 and (i % 3 == 0 or i % 2 == 1)]
    got = by_index(consume_all(go, ns, topic, f"{names}-cg", expect=len(wanted), sql=sql))
    assert sorted(got) == wanted, f"received {sorted(got)}, wanted {wanted}"
    for i in wanted:
        assert_intact(got[i][0], msgs[i], topic)


# --------------------------------------------------------------------------- ordered


def test_orderly(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """Sharding keys through NewHashQueueSelector (FNV-1a of the key mod 4), an orderly consumer
    (WithConsumerOrder): each key's messages exactly once, strictly in send order, all from the key's queue."""
    ns, topic = pocketmq.namesrv_addr, f"{names}-t"
    keys, steps = [f"order-{k}" for k in range(6)], 25
    msgs = []
    for step in range(steps):
        for k in keys:
            m = message("ord", len(msgs), tags=None, sharding_key=k)
            m.props |= {"key": k, "step": str(step)}
            msgs.append(m)
    sent = go.produce(ns, topic, f"{names}-pg", msgs)
    queue_of = {k: fnv1a32(k.encode()) % 4 for k in keys}
    for m, r in zip(msgs, sent, strict=True):
        assert r["queueId"] == queue_of[m.props["key"]], f"{m.props['key']} sent to queue {r['queueId']}"
    got = consume_all(go, ns, topic, f"{names}-cg", expect=len(msgs), orderly=True)
    assert len(got) == len(msgs), f"{len(got)} deliveries of {len(msgs)}"
    for k in keys:
        seq = [g for g in got if g["props"].get("key") == k]
        assert [int(g["props"]["step"]) for g in seq] == list(range(steps)), f"{k}: {[g['props']['step'] for g in seq]}"
        assert {g["queueId"] for g in seq} == {queue_of[k]}
        assert [g["queueOffset"] for g in seq] == sorted(g["queueOffset"] for g in seq)
    for g in got:
        assert_intact(g, msgs[int(g["props"]["pmqIndex"])], topic)


# --------------------------------------------------------------------------- delay levels


def test_delay_level(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """WithDelayTimeLevel 1 and 2 (1 s, 5 s): delivered not before their level, and within 3 s after it; the
    undelayed control message at once."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-cg"
    create_topic(pocketmq.broker_addr, ns, topic)
    consumer = go.start_consume(ns, topic, group, expect=5, timeout=60, linger=1)
    wait_allocated([consumer], topic, 4)
    levels = [0, 1, 2, 1, 2]
    msgs = [message("delay", i, delay_level=lv) for i, lv in enumerate(levels)]
    sent = go.produce(ns, topic, f"{names}-pg", msgs)
    got = by_index(of(consumer.join(60), "message"))
    assert sorted(got) == list(range(len(msgs)))
    lateness = []
    for i, level in enumerate(levels):
        [g] = got[i]
        assert_intact(g, msgs[i], topic)
        waited = g["time"] - sent[i]["time"]
        lateness.append(waited)
        due = DELAY_LEVEL_MS.get(level, 0)
        assert waited >= due - CLOCK_SLACK_MS, f"level {level}: delivered after {waited} ms"
        assert waited <= due + 3000, f"level {level}: delivered only after {waited} ms"
        assert "DELAY" not in g["props"], g["props"]  # cleared when the due message is put in its topic
    report("delay levels", levels=levels, delivered_after_ms=lateness)


# --------------------------------------------------------------------------- broadcasting


def test_broadcast(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """Three BroadCasting consumers of one group: each gets every message exactly once."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-cg"
    msgs = [message("bc", i) for i in range(10)]
    go.produce(ns, topic, f"{names}-pg", msgs)
    procs = [go.start_consume(ns, topic, group, expect=len(msgs), timeout=60, broadcast=True) for _ in range(3)]
    for p in procs:
        got = by_index(of(p.join(90), "message"))
        assert sorted(got) == list(range(len(msgs))), f"received {sorted(got)}\n{p.describe()}"
        for i, m in enumerate(msgs):
            [g] = got[i]
            assert_intact(g, m, topic)


# --------------------------------------------------------------------------- retry and dead letters


def start_failing(go: GoClient, broker: str, ns: str, topic: str, group: str, **kw: Any) -> DriverProcess:
    """A consumer whose retry topic exists beforehand (1 queue, as the broker creates it on the first heartbeat):
    the Go client only allocates %RETRY%<group> once it has its route, else after a 20 s rebalance."""
    create_topic(broker, ns, topic)
    create_topic(broker, ns, f"%RETRY%{group}", queues=1)
    consumer = go.start_consume(ns, topic, group, retry_delay_level=1, **kw)
    wait_allocated([consumer], topic, 4)
    wait_allocated([consumer], f"%RETRY%{group}", 1)
    return consumer


def test_retry(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """ConsumeRetryLater on the first delivery (DelayLevelWhenNextConsume 1): each message comes again from
    %RETRY%<group>, reconsumeTimes 1, its topic restored, intact, not before 1 s; then no more."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-cg"
    msgs = [message("retry", i) for i in range(4)]
    consumer = start_failing(go, pocketmq.broker_addr, ns, topic, group, expect=8, timeout=60, linger=2, fail_until=1)
    sent = go.produce(ns, topic, f"{names}-pg", msgs)
    got = by_index(of(consumer.join(90), "message"))
    waits = []
    for i, m in enumerate(msgs):
        deliveries = got.get(i, [])
        assert len(deliveries) == 2, f"message {i}: deliveries {deliveries}"
        first, again = deliveries
        assert (first["reconsumeTimes"], again["reconsumeTimes"]) == (0, 1)
        assert first["queueTopic"] == topic and again["queueTopic"] == f"%RETRY%{group}", again
        for g in (first, again):
            assert_intact(g, m, topic)
            assert g["msgId"] == sent[i]["msgId"], g["msgId"]
        assert again["props"].get("RETRY_TOPIC") == topic, again["props"]
        assert again["props"].get("ORIGIN_MESSAGE_ID"), again["props"]
        waits.append(again["time"] - first["time"])
        assert 1000 - CLOCK_SLACK_MS <= waits[-1] <= 1000 + 4000, f"message {i}: retried after {waits[-1]} ms"
    report("retry", redelivered_after_ms=waits)


def test_dead_letter(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """WithMaxReconsumeTimes(1) and a listener that always fails: deliveries with reconsumeTimes 0 and 1, then the
    message is in %DLQ%<group>, where another group's consumer gets it intact."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-cg"
    dlq = f"%DLQ%{group}"
    msgs = [message("dlq", i) for i in range(3)]
    failing = start_failing(
        go, pocketmq.broker_addr, ns, topic, group, expect=6, timeout=60, linger=2, fail_until=-1, max_reconsume=1
    )
    sent = go.produce(ns, topic, f"{names}-pg", msgs)
    got = by_index(of(failing.join(90), "message"))  # the linger covers a third delivery, which must not come
    for i in range(len(msgs)):
        assert [g["reconsumeTimes"] for g in got.get(i, [])] == [0, 1], f"message {i}: {got.get(i)}"
    route = wait_route(ns, dlq)
    dead = by_index(consume_all(go, ns, dlq, f"{names}-dlq-reader", expect=len(msgs)))
    assert sorted(dead) == list(range(len(msgs)))
    for i, m in enumerate(msgs):
        [d] = dead[i]
        assert_intact(d, m, dlq)
        assert d["msgId"] == sent[i]["msgId"] and d["reconsumeTimes"] == 2, d
        assert d["props"].get("RETRY_TOPIC") == topic and d["props"].get("ORIGIN_MESSAGE_ID"), d["props"]
    report("dead letters", dlq_route=route)


# --------------------------------------------------------------------------- request-reply


def test_request_reply(go: GoClient, pocketmq: PocketMQ, names: str, tmp_path: Path) -> None:
    """Producer.Request and RequestAsync: a consumer answers each with consumer.CreateReplyMessage (sent to
    <cluster>_REPLY_TOPIC); the requester gets the reply body for its own request within the TTL.

    Each requester first sends a throwaway request (``warmup``, not asserted): the broker pushes replies to the
    client id it knows from heartbeats, and v2.1.2 heartbeats 1 s after Start and then every 30 s, each time only
    to brokers it has a route to, while Request heartbeats only for a topic the name server does not know (Java
    checks its own route table). A fresh Go requester's first requests to an existing topic therefore time out,
    against Apache's broker too (its examples/consumer/rpc sleeps in the replier for the same reason)."""
    ns, topic = pocketmq.namesrv_addr, f"{names}-t"
    create_topic(pocketmq.broker_addr, ns, topic)
    stop = tmp_path / "stop"
    replier = go.start_consume(ns, topic, f"{names}-cg", expect=0, timeout=90, linger=0.5, reply=True, stop_file=stop)
    wait_allocated([replier], topic, 4)
    asked: list[Message] = []
    for use_async in (False, True):
        msgs = [message("rr", i + 3 * use_async) for i in range(3)]
        asked += msgs
        lines = go.start_request(
            ns, topic, f"{names}-pg-{use_async}", msgs, ttl_ms=8000, use_async=use_async, warmup=True
        ).join(60)
        assert not of(lines, "request-error"), of(lines, "request-error")
        replies = {r["index"]: r for r in of(lines, "reply")}
        assert sorted(replies) == [0, 1, 2]
        for i, m in enumerate(msgs):
            assert body_of(replies[i]) == b"reply:" + m.body, replies[i]
            assert replies[i]["props"].get("CORRELATION_ID") == replies[i]["correlationId"], replies[i]["props"]
            assert replies[i]["elapsedMs"] < 2000, replies[i]  # pushed as soon as the responder answers
        [warm] = of(lines, "warmup")
        report(
            "request-reply", asynchronous=use_async, warmup=warm["outcome"][:60],
            round_trips_ms=[replies[i]["elapsedMs"] for i in range(3)],
        )  # fmt: skip
    stop.touch()
    replier_lines = replier.join(60)
    answered = {body_of(m) for m in of(replier_lines, "message")}
    assert all(m.body in answered for m in asked), "the replier missed a request"


# --------------------------------------------------------------------------- pull consumer


def test_pull_consumer(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """NewPullConsumer with Poll + ACK: every message once, intact, in queue order; the ACKed offsets are
    committed, so the group's next process polls only the messages sent since."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-cg"
    msgs = [message("pull", i) for i in range(12)]
    sent = go.produce(ns, topic, f"{names}-pg", msgs)
    lines = go.start_pull(ns, topic, group, expect=len(msgs), timeout=45, linger=1).join(60)
    got = by_index(of(lines, "message"))
    assert sorted(got) == list(range(len(msgs))), sorted(got)
    for i, m in enumerate(msgs):
        [g] = got[i]
        assert_intact(g, m, topic)
        assert (g["queueId"], g["queueOffset"], g["msgId"]) == (
            sent[i]["queueId"],
            sent[i]["queueOffset"],
            sent[i]["msgId"],
        )
    for q in range(4):
        offsets = [m["queueOffset"] for m in of(lines, "message") if m["queueId"] == q]
        assert offsets == sorted(offsets), f"queue {q}: {offsets}"
    later = [message("pull", 100 + i) for i in range(2)]
    go.produce(ns, topic, f"{names}-pg", later)
    again = by_index(of(go.start_pull(ns, topic, group, expect=len(later), timeout=30, linger=1.5).join(60), "message"))
    assert sorted(again) == [100, 101], f"the next process of the group polled {sorted(again)}"


# --------------------------------------------------------------------------- bodies and topics


def test_large_and_compressed_bodies(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """1 MiB (incompressible) and 5 KiB / 64 KiB (compressible) bodies go compressed (over 4 KiB), a 4 KiB one
    not; every one arrives byte-exact, sync and batch alike."""
    ns, topic = pocketmq.namesrv_addr, f"{names}-t"
    big = payload("big", 0, 1 << 20)
    bodies = [big, (TEXT * 400).encode()[: 5 * 1024], b"z" * (64 * 1024), payload("edge", 3, COMPRESS_OVER - 1)]
    msgs = [Message(body=b, tags="big", keys=[f"k{i}"], props={"pmqIndex": str(i)}) for i, b in enumerate(bodies)]
    go.produce(ns, topic, f"{names}-pg", msgs, send_timeout_ms=20_000)
    got = by_index(consume_all(go, ns, topic, f"{names}-cg", expect=len(msgs)))
    for i, m in enumerate(msgs):
        [g] = got[i]
        assert_intact(g, m, topic)
        compressed = bool(g["sysFlag"] & COMPRESSED_FLAG)
        assert compressed == (len(m.body) >= COMPRESS_OVER), f"body {i} ({len(m.body)} B): sysFlag {g['sysFlag']}"


def test_auto_create_topic(go: GoClient, pocketmq: PocketMQ, names: str) -> None:
    """A send to an unknown topic goes through TBW102: the broker creates it (4 queues, the client's
    DefaultTopicQueueNums), the name server routes it, and a consumer reads the message."""
    ns, topic = pocketmq.namesrv_addr, f"{names}-new"
    assert routed_queues(ns, topic) is None
    sent = go.produce(ns, topic, f"{names}-pg", [message("auto", 0)])
    route = wait_route(ns, topic)
    assert route["read"] == route["write"] == 4, route
    [g] = consume_all(go, ns, topic, f"{names}-cg", expect=1)
    assert_intact(g, message("auto", 0), topic)
    assert g["msgId"] == sent[0]["msgId"]


# --------------------------------------------------------------------------- clustering and offsets


def test_clustering(go: GoClient, pocketmq: PocketMQ, names: str, tmp_path: Path) -> None:
    """Three consumers of one group split the 8 queues (AllocateByAveragely, rebalanced on each join): every message
    is consumed exactly once overall while the group is stable, each by the consumer owning its queue."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-cg"
    create_topic(pocketmq.broker_addr, ns, topic, queues=8)
    stop = tmp_path / "stop"
    procs = [go.start_consume(ns, topic, group, expect=0, timeout=90, linger=1.5, stop_file=stop) for _ in range(3)]
    started = time.monotonic()
    wait_allocated(procs, topic, 8)
    report("clustering", stable_assignment_after_s=round(time.monotonic() - started, 1))
    owners = {q: n for n, p in enumerate(procs) for q in (latest_allocation(p, topic) or {})["queues"]}
    msgs = [message("cl", i) for i in range(48)]
    sent = go.produce(ns, topic, f"{names}-pg", msgs)
    deadline = time.monotonic() + 30
    while sum(len(p.events("message")) for p in procs) < len(msgs) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.touch()
    lines = [p.join(60) for p in procs]
    # Once the first consumer shuts down, the others take its queues over from the last committed offsets (the Go
    # client commits every 5 s), so what it consumed since may come again: exactly once holds while stable.
    cutoff = min(of(x, "done")[0]["time"] for x in lines)
    per_proc = [[m for m in of(x, "message") if m["time"] < cutoff] for x in lines]
    counts = Counter(int(m["props"]["pmqIndex"]) for got in per_proc for m in got)
    assert counts == Counter(range(len(msgs))), f"not exactly once: {counts}"
    late = [m for x in lines for m in of(x, "message") if m["time"] >= cutoff]
    report("clustering", per_consumer=[len(x) for x in per_proc], redelivered_during_shutdown=len(late))
    for n, got in enumerate(per_proc):
        for g in got:
            i = int(g["props"]["pmqIndex"])
            assert owners[sent[i]["queueId"]] == n, f"message {i} (queue {sent[i]['queueId']}) went to consumer {n}"
            assert_intact(g, msgs[i], topic)
    assert all(per_proc), f"a consumer got nothing: {[len(x) for x in per_proc]}"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[PocketMQ]:
    server = PocketMQ(data_dir=tmp_path / "pocketmq")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_offsets_resume(go: GoClient, own_server: PocketMQ, names: str) -> None:
    """Offsets the consumer committed are where the group resumes: a new process gets only the later messages, and
    so does one after a broker restart."""
    server = own_server
    ns, topic, group = server.namesrv_addr, f"{names}-t", f"{names}-cg"
    batches = [[message(f"b{b}", 10 * b + i) for i in range(6)] for b in range(3)]
    for b, batch in enumerate(batches):
        if b == 2:
            server.restart()
        go.produce(ns, topic, f"{names}-pg", batch)
        got = by_index(consume_all(go, ns, topic, group, expect=len(batch), linger=2))
        assert sorted(got) == [10 * b + i for i in range(6)], f"batch {b}: received {sorted(got)}"
        for m in batch:
            [g] = got[int(m.props["pmqIndex"])]
            assert_intact(g, m, topic)


# --------------------------------------------------------------------------- no server


def test_no_server(go: GoClient, tmp_path: Path) -> None:
    """Nothing listens at the name server address: the send fails with an error within 15 s and the process
    ends cleanly."""
    ns = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = go.start_produce(ns, "go-no-server", "go-no-server-pg", [message("ns", 0)], retries=0)
    lines = proc.join(30)
    took = time.monotonic() - started
    [err] = of(lines, "send-error")
    assert not of(lines, "sent")
    report("no server", error=err["error"][:120], send_failed_after_ms=err["elapsedMs"], process_s=round(took, 1))
    assert err["elapsedMs"] < 15_000 and took < 20

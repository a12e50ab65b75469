"""The stock Node.js RocketMQ client (npm ``ali-ons``, pinned in compat_tests/node/package.json) against pocketmq.

Real ``node`` processes (compat_tests/node/driver.js, see node_driver.py) send with ``Producer#send`` (awaited one
by one, or many promises in flight at once) and consume with ``Consumer`` (a push consumer, clustering or
``isBroadcast``, with a tag or SQL92 subscription) through one pocketmq for the module. Every assertion is about what
the client itself reported: the send results and the messages its listener was handed (body, tags, keys, user
properties, msgId, queue, reconsume times, receive time).

What ali-ons 3.12.0 lacks is not tested here (its lib/index.js exports Producer, Consumer and Message only):
oneway and batch sends, an orderly consumer and queue locks (a message's ``shardingKey`` picks its queue, but the
consumer never locks queues and sends a failed message back to %RETRY%), transactions, request-reply, the pull
consumer and message queries. It cannot create topics either (a route lookup
answered TOPIC_NOT_EXIST throws before its TBW102 fallback), so every test creates its topic beforehand with
UPDATE_AND_CREATE_TOPIC, as an operator would. The client is pointed at the name server with its ``nameSrv`` option
(its Aliyun address-server lookup is never used); without an access key it signs nothing, with one (test 1) every
request carries ``AccessKey``/``OnsChannel``/``Signature`` extFields, which pocketmq ignores.

Timing is measured with the wall clock of this machine, shared by the driver processes and the server: a send is
bracketed by ``sentAt``/``sentDone`` (driver, ms), the consumer stamps ``receivedAt`` when its listener is called.
Run: ``pytest compat_tests/test_node.py -s`` (needs node and npm; skipped without them unless ``CI`` is set; ``-s``
shows the install time and the observed lateness).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import PocketMQ
from compat_tests.node_driver import (
    Message,
    NodeClient,
    create_topic,
    unb64,
)

pytestmark = [pytest.mark.compat, pytest.mark.slow]

TEXT = "ünïcødé ✓ 日本語 a=b;c:d"
CLOCK_SLACK_MS = 50  # a message may seem to arrive this much before it is due (ms rounding, clock reads)
# Due -> received: the broker hands a due message over and wakes the consumer's held long poll, so this is normally
# tens of ms; generous for a busy machine running several node processes.
LATE_BOUND_MS = 3_000
RETRY_LEVEL_3_MS = 10_000  # the first redelivery of a failed message: %RETRY% with delay level 3 + reconsumeTimes 0
# Properties the client adds itself to every message it hands the listener (from the pull response).
CLIENT_ADDED = {"MIN_OFFSET", "MAX_OFFSET"}


@pytest.fixture
def names(request: pytest.FixtureRequest) -> str:
    base = request.node.originalname.removeprefix("test_").replace("_", "-")
    return f"node-{base}-{os.getpid()}"


# --------------------------------------------------------------------------- helpers


def topic_for(pocketmq: PocketMQ, names: str, queues: int = 4) -> str:
    topic = f"{names}-topic"
    create_topic(pocketmq.broker_addr, pocketmq.namesrv_addr, topic, queues)
    return topic


def user_props(got: dict[str, Any]) -> dict[str, str]:
    """The properties a message carries apart from the system ones (what a user set, plus pmqName)."""
    props = got["props"]
    return {k: v for k, v in props.items() if k and not k.isupper() and not k.startswith("__")}


def by_name(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        out.setdefault(m["name"], []).append(m)
    return out


def assert_intact(got: dict[str, Any], sent: Message, topic: str) -> None:
    """The listener got ``sent`` as it was sent: body, tags, keys, user properties, topic."""
    assert got["topic"] == topic, got["topic"]
    body = unb64(got["body"])
    assert body == sent.body, f"{sent.name}: body of {len(body)} bytes differs from the {len(sent.body)} sent"
    assert got["tags"] == sent.tags, (sent.name, got["tags"])
    assert got["keys"] == (" ".join(sent.keys) if sent.keys else None), (sent.name, got["keys"])
    assert user_props(got) == {**sent.props, "pmqName": sent.name}, (sent.name, got["props"])


def assert_delivered_once(
    messages: list[dict[str, Any]], plan: list[Message], sent: dict[str, dict[str, Any]], topic: str
) -> dict[str, dict[str, Any]]:
    """Every planned message exactly once, intact, with the id and queue its send result named."""
    got = by_name(messages)
    assert set(got) == {m.name for m in plan}, f"received {sorted(got)}, sent {sorted(m.name for m in plan)}"
    once = {}
    for m in plan:
        assert len(got[m.name]) == 1, f"{m.name} delivered {len(got[m.name])} times"
        msg = once[m.name] = got[m.name][0]
        assert_intact(msg, m, topic)
        assert msg["msgId"] == sent[m.name]["msgId"], (m.name, msg["msgId"], sent[m.name]["msgId"])
        assert msg["queueId"] == int(sent[m.name]["queueId"]), (m.name, msg["queueId"], sent[m.name]["queueId"])
        assert msg["queueOffset"] == sent[m.name]["queueOffset"], m.name
        assert msg["reconsumeTimes"] == 0, (m.name, msg["reconsumeTimes"])
        assert not msg["failed"]
    return once


def plain(name: str, i: int, **kw: Any) -> Message:
    return Message(
        name=name,
        body=f"{name}|{i}|{TEXT}".encode(),
        tags=kw.pop("tags", f"Tag{'AB'[i % 2]}"),
        keys=kw.pop("keys", [f"{name}-key", "shared-key"]),
        props=kw.pop("props", {"pmqText": TEXT, "pmqIndex": str(i)}),
        **kw,
    )


def warm_up(node: NodeClient, ns: str, topic: str, group: str, consumer: Any) -> None:
    """One plain message through the running consumer: it is pulling before timed messages are sent."""
    node.produce(ns, topic, group, [plain("warmup", 0)])
    consumer.wait_for(lambda ls: any(x.get("name") == "warmup" for x in ls), 30, "the warm-up message")


def assert_on_time(got: dict[str, Any], sent: dict[str, Any], due_after_ms: int) -> int:
    """Not before ``sentAt + due_after_ms`` (the earliest it can be due), soon after ``sentDone + due_after_ms``."""
    early = got["receivedAt"] - (sent["sentAt"] + due_after_ms)
    late = got["receivedAt"] - (sent["sentDone"] + due_after_ms)
    assert early >= -CLOCK_SLACK_MS, f"{got['name']} arrived {-early} ms before it was due"
    assert late <= LATE_BOUND_MS, f"{got['name']} arrived {late} ms after it was due"
    return late


# --------------------------------------------------------------------------- tests


def test_sync_send_roundtrip(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """Sync sends (tags, keys, unicode user properties, a compressed > 4 KiB body, a 1 MiB body), signed with an
    access key, reach a (signed) push consumer intact, exactly once, with the send results' ids and queues."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    plan = [plain(f"m{i}", i) for i in range(6)]
    plan.append(Message("no-keys", b"no keys, no user properties", tags="TagC"))
    plan.append(Message("unicode", TEXT.encode(), tags="标签✓", keys=["ключ", "鍵✓"], props={"ünï名": TEXT}))
    plan.append(Message("text-8k", ("compressible ✓ " * 600).encode(), tags="Big", keys=["text-8k"],
                        props={"pmqText": TEXT}))  # fmt: skip
    plan.append(Message("random-5k", os.urandom(5 * 1024 + 7), tags="Big", keys=["random-5k"]))
    plan.append(Message("random-1m", os.urandom(1024 * 1024), tags="Huge", keys=["random-1m", "huge"],
                        props={"pmqText": TEXT, "pmqSize": "1MiB"}))  # fmt: skip
    sent = node.produce(ns, topic, f"{names}-pg", plan, access_key="pocketmq-ak")
    consumer = node.start_consume(ns, topic, f"{names}-cg", expect=len(plan), timeout=60, linger=1.5,
                                  access_key="pocketmq-ak")  # fmt: skip
    got = assert_delivered_once(consumer.finish(90), plan, sent, topic)
    # ali-ons deflates bodies of 4 KiB and more (sysFlag bit 0): pocketmq keeps the flag, the client inflates.
    for name in ("text-8k", "random-5k", "random-1m"):
        assert got[name]["sysFlag"] & 1, (name, got[name]["sysFlag"])
    for name in ("m0", "no-keys"):
        assert not got[name]["sysFlag"] & 1, (name, got[name]["sysFlag"])
    assert {m["queueId"] for m in got.values()} == {0, 1, 2, 3}  # round robin over the topic's 4 queues


def test_tag_subscription(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """``a || b`` gets the a and b messages only: not c, nor an untagged one (which the client's own tag check
    would let through, so the broker must filter it)."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    plan = [plain(f"{tag or 'none'}-{i}", i, tags=tag) for i in range(3) for tag in ("a", "b", "c", None)]
    sent = node.produce(ns, topic, f"{names}-pg", plan)
    wanted = [m for m in plan if m.tags in ("a", "b")]
    consumer = node.start_consume(ns, topic, f"{names}-cg", expr="a || b", expect=len(wanted), timeout=60, linger=3)
    assert_delivered_once(consumer.finish(90), wanted, sent, topic)


def test_delay_level(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """Delay level 1 (1 s): each message arrives no earlier than due, within LATE_BOUND_MS after, intact."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    plan = [plain(f"delay-{i}", i, delay_level=1) for i in range(4)]
    consumer = node.start_consume(ns, topic, f"{names}-cg", expect=1 + len(plan), timeout=60)
    consumer.wait_ready()
    warm_up(node, ns, topic, f"{names}-pg", consumer)
    sent = node.produce(ns, topic, f"{names}-pg", plan)
    got = by_name(consumer.finish(60))
    late = []
    for m in plan:
        assert len(got.get(m.name, [])) == 1, f"{m.name} delivered {len(got.get(m.name, []))} times"
        msg = got[m.name][0]
        assert_intact(msg, m, topic)
        assert msg["reconsumeTimes"] == 0
        assert msg["queueId"] == int(sent[m.name]["queueId"]), (m.name, msg["queueId"], sent[m.name]["queueId"])
        # As Apache's ScheduleMessageService delivers it: DELAY cleared, the real topic and queue kept.
        assert "DELAY" not in msg["props"], msg["props"]
        assert msg["props"].get("REAL_TOPIC") == topic, msg["props"]
        assert msg["props"].get("REAL_QID") == str(msg["queueId"]), msg["props"]
        late.append(assert_on_time(msg, sent[m.name], 1_000))
    print(f"\n[node] delay level 1: received {min(late)}..{max(late)} ms after due")


def test_start_deliver_time(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """``Message#setStartDeliverTime(now + 2 s)`` (the ``__STARTDELIVERTIME`` property): on time, intact."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    plan = [plain(f"timer-{i}", i, start_deliver_in_ms=2_000) for i in range(4)]
    consumer = node.start_consume(ns, topic, f"{names}-cg", expect=1 + len(plan), timeout=60)
    consumer.wait_ready()
    warm_up(node, ns, topic, f"{names}-pg", consumer)
    sent = node.produce(ns, topic, f"{names}-pg", plan)
    got = by_name(consumer.finish(60))
    late = []
    for m in plan:
        assert len(got.get(m.name, [])) == 1, f"{m.name} delivered {len(got.get(m.name, []))} times"
        msg = got[m.name][0]
        assert_intact(msg, m, topic)
        assert msg["reconsumeTimes"] == 0
        assert msg["queueId"] == int(sent[m.name]["queueId"]), (m.name, msg["queueId"], sent[m.name]["queueId"])
        # The deliver time is the one the driver set, measured from sentAt: never before it, soon after it.
        due = sent[m.name]["deliverAt"]
        assert due == sent[m.name]["sentAt"] + 2_000
        assert msg["receivedAt"] >= due - CLOCK_SLACK_MS, f"{m.name} arrived {due - msg['receivedAt']} ms early"
        late.append(assert_on_time(msg, sent[m.name], 2_000))
    print(f"\n[node] setStartDeliverTime(+2 s): received {min(late)}..{max(late)} ms after due")


def test_broadcast(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """Two BROADCASTING consumers of one group (same default client id, as ali-ons keeps instance DEFAULT in
    broadcasting mode) each get every message once."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    group = f"{names}-cg"
    plan = [plain(f"bc-{i}", i) for i in range(8)]
    consumers = [
        node.start_consume(ns, topic, group, expect=len(plan), timeout=60, broadcast=True, linger=2, name=f"bc{i}")
        for i in range(2)
    ]
    for c in consumers:
        c.wait_ready()
        c.wait_for(lambda ls: any(x.get("event") == "ready" and x.get("queues") == [0, 1, 2, 3] for x in ls), 30,
                   "all 4 queues")  # fmt: skip
    sent = node.produce(ns, topic, f"{names}-pg", plan)
    for c in consumers:
        assert_delivered_once(c.finish(60), plan, sent, topic)


def test_retry_after_failure(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """A listener that throws on the first delivery: the client sends the message back (CONSUMER_SEND_MSG_BACK,
    delay level 0), and it comes again through %RETRY%group about 10 s later with reconsume times 1, intact, with
    the original topic and the first delivery's id as ORIGIN_MESSAGE_ID; then nothing more."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    plan = [plain(f"retry-{i}", i) for i in range(2)]
    consumer = node.start_consume(ns, topic, f"{names}-cg", expect=len(plan), timeout=60, fail_first=True, linger=2)
    consumer.wait_ready()
    sent = node.produce(ns, topic, f"{names}-pg", plan)
    got = by_name(consumer.finish(75))
    for m in plan:
        deliveries = got.get(m.name, [])
        assert [d["failed"] for d in deliveries] == [True, False], f"{m.name}: {deliveries}"
        first, again = deliveries
        assert_intact(first, m, topic)
        assert_intact(again, m, topic)
        assert first["msgId"] == sent[m.name]["msgId"]
        assert first["queueId"] == int(sent[m.name]["queueId"])
        assert (first["reconsumeTimes"], again["reconsumeTimes"]) == (0, 1)
        assert again["msgId"] != first["msgId"]
        assert again["originMsgId"] == first["msgId"], again["props"]
        assert again["props"].get("RETRY_TOPIC") == topic, again["props"]
        waited = again["receivedAt"] - first["receivedAt"]
        assert RETRY_LEVEL_3_MS - CLOCK_SLACK_MS <= waited <= RETRY_LEVEL_3_MS + LATE_BOUND_MS + 1_000, waited
    print(f"\n[node] redelivered after {[b['receivedAt'] - a['receivedAt'] for a, b in got.values()]} ms")


def test_offsets_resume(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """The consumed offsets ali-ons commits (with its pulls and UPDATE_CONSUMER_OFFSET on close) hold: a new consumer
    process of the same group gets only what was sent after the first one left, once."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    group = f"{names}-cg"
    first = [plain(f"before-{i}", i) for i in range(6)]
    sent = node.produce(ns, topic, f"{names}-pg", first)
    assert_delivered_once(node.start_consume(ns, topic, group, expect=6, timeout=60).finish(90), first, sent, topic)
    later = [plain(f"after-{i}", i) for i in range(6)]
    sent = node.produce(ns, topic, f"{names}-pg", later)
    again = node.start_consume(ns, topic, group, expect=6, timeout=60, linger=2, name="resume")
    assert_delivered_once(again.finish(90), later, sent, topic)


def test_sql92_subscription(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """``Consumer#subscribe(topic, {expressionType: 'SQL92', subString})`` gets exactly the messages whose user
    properties match (numbers compared as numbers, a unicode string, IS NOT NULL, a missing property is no match),
    none of the others within a 3 s linger. ali-ons filters tags only on its side, so the broker does all of it."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    expr = "(color = 'red' AND n BETWEEN 2 AND 12) OR vip IS NOT NULL OR label = 'ünïcødé ✓'"
    plan = [plain(f"sql-{i}", i, props={"color": ("red", "blue", "green")[i % 3], "n": str(i)}) for i in range(18)]
    plan += [
        plain("vip-green", 20, props={"color": "green", "n": "99", "vip": "yes"}),
        plain("vip-only", 21, tags=None, props={"vip": "0"}),
        plain("label", 22, props={"label": "ünïcødé ✓", "n": "1"}),
        plain("label-other", 23, props={"label": "unicode ✓", "color": "red"}),  # red but n missing: NULL
        plain("no-props", 24, props={}),
    ]
    wanted = [m for m in plan if m.name in {"sql-3", "sql-6", "sql-9", "sql-12", "vip-green", "vip-only", "label"}]
    sent = node.produce(ns, topic, f"{names}-pg", plan)
    consumer = node.start_consume(ns, topic, f"{names}-cg", expr=expr, expr_type="SQL92", expect=len(wanted),
                                  timeout=60, linger=3)  # fmt: skip
    assert_delivered_once(consumer.finish(90), wanted, sent, topic)


def test_dead_letter_after_max_reconsume_times(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """``maxReconsumeTimes: 1`` and a listener that always throws: each message is delivered twice (the first time,
    then once through %RETRY%group about 10 s later with reconsume times 1); the second failure's send-back
    (CONSUMER_SEND_MSG_BACK with maxReconsumeTimes 1) puts it in %DLQ%group, where a consumer of another group
    reads it once, intact, with the original topic, the first delivery's id as ORIGIN_MESSAGE_ID and reconsume
    times 2 (as Apache's consumerSendMsgBack sets them); no third delivery reaches the failing consumer."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    group = f"{names}-cg"
    plan = [plain(f"dlq-{i}", i) for i in range(2)]
    plan.append(Message("dlq-big", ("dead letter ✓ " * 700).encode(), tags="Big", keys=["dlq-big"],
                        props={"pmqText": TEXT}))  # fmt: skip
    failing = node.start_consume(ns, topic, group, expect=1, timeout=90, fail_always=True, max_reconsume_times=1,
                                 name="failing")  # fmt: skip
    failing.wait_ready()
    sent = node.produce(ns, topic, f"{names}-pg", plan)
    failing.wait_for(lambda ls: sum(x.get("event") == "message" for x in ls) >= 2 * len(plan), 40,
                     "two deliveries of each message")  # fmt: skip
    reader = node.start_consume(ns, f"%DLQ%{group}", f"{names}-dlq-reader", expect=len(plan), timeout=60,
                                linger=2, name="dlq-reader")  # fmt: skip
    dead = by_name(reader.finish(90))
    failing.stop()
    got = by_name(failing.finish(30))
    for m in plan:
        deliveries = got.get(m.name, [])
        assert [(d["failed"], d["reconsumeTimes"]) for d in deliveries] == [(True, 0), (True, 1)], deliveries
        first, again = deliveries
        assert first["msgId"] == sent[m.name]["msgId"]
        assert_intact(first, m, topic)
        assert_intact(again, m, topic)
        assert again["originMsgId"] == first["msgId"]
        assert len(dead.get(m.name, [])) == 1, f"{m.name} in the dead-letter topic {len(dead.get(m.name, []))} times"
        [d] = dead[m.name]
        assert_intact(d, m, f"%DLQ%{group}")
        assert d["props"].get("RETRY_TOPIC") == topic, d["props"]
        assert d["originMsgId"] == first["msgId"], d["props"]
        assert d["reconsumeTimes"] == 2, d["reconsumeTimes"]
        assert d["msgId"] not in (first["msgId"], again["msgId"])
    assert dead["dlq-big"][0]["sysFlag"] & 1  # still the deflated body the producer sent, inflated by the reader


def test_clustering_three_consumers_share_the_queues(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """Three consumer processes of one group on a 6-queue topic: once their rebalances settle (ali-ons rebalances
    on start and every 10 s), each holds a distinct non-empty set of queues covering all six; messages sent then
    reach exactly one of them, each the messages of its own queues, every message exactly once."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names, queues=6)
    group = f"{names}-cg"
    consumers = [
        node.start_consume(ns, topic, group, expect=1_000_000, timeout=120, name=f"member{i}") for i in range(3)
    ]

    def latest_queues() -> list[list[int]]:
        return [(c.events("ready") or [{"queues": []}])[-1]["queues"] for c in consumers]

    deadline = time.monotonic() + 45
    while True:
        held = latest_queues()
        if all(held) and sorted(q for qs in held for q in qs) == list(range(6)):
            break
        assert time.monotonic() < deadline, f"the group did not settle on a partition of the 6 queues: {held}"
        time.sleep(0.2)
    plan = [plain(f"cl-{i}", i) for i in range(36)]
    sent = node.produce(ns, topic, f"{names}-pg", plan)
    deadline = time.monotonic() + 30
    while sum(len(c.messages()) for c in consumers) < len(plan) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # a duplicate would show up meanwhile
    assert latest_queues() == held, "the group rebalanced while the messages were consumed"
    for c in consumers:
        c.stop()
    got = [c.finish(30) for c in consumers]
    assert_delivered_once([m for msgs in got for m in msgs], plan, sent, topic)
    for queues, msgs in zip(held, got, strict=True):
        assert msgs, f"the consumer holding queues {queues} got nothing"
        assert {m["queueId"] for m in msgs} <= set(queues), (queues, sorted({m["queueId"] for m in msgs}))
    print(f"\n[node] clustering: queues {held}, messages {[len(m) for m in got]}")


def test_concurrent_sends(node: NodeClient, pocketmq: PocketMQ, names: str) -> None:
    """Many ``Producer#send`` promises in flight at once on one connection (ali-ons' non-blocking send, answered by
    opaque): every one resolves SEND_OK with its own queue offset, and each message is consumed once, intact."""
    ns = pocketmq.namesrv_addr
    topic = topic_for(pocketmq, names)
    plan = [plain(f"conc-{i}", i) for i in range(40)]
    proc = node.start_produce(ns, topic, f"{names}-pg", plan, concurrent=True)
    lines = proc.join(60)
    sent = {x["name"]: x for x in lines if x.get("event") == "sent"}
    assert set(sent) == {m.name for m in plan} and all(x["status"] == "SEND_OK" for x in sent.values()), lines
    # Started together: most sends were issued before the first answer came back.
    first_done = min(x["sentDone"] for x in sent.values())
    assert sum(x["sentAt"] < first_done for x in sent.values()) > len(plan) // 2, "the sends were not concurrent"
    slots = {(x["queueId"], x["queueOffset"]) for x in sent.values()}
    assert len(slots) == len(plan), "two sends got the same queue offset"
    consumer = node.start_consume(ns, topic, f"{names}-cg", expect=len(plan), timeout=60, linger=1.5)
    assert_delivered_once(consumer.finish(90), plan, sent, topic)


def test_producer_without_server_fails_cleanly(node: NodeClient, tmp_path: Path) -> None:
    """A producer whose name server port refuses connections: each send rejects at once with the client's
    ECONNREFUSED error naming the address, the producer closes, and the process exits, within 20 s."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        started = time.monotonic()
        proc = node.start_produce(addr, "NodeNoServer", "node-no-server-pg", [plain(f"ns-{i}", i) for i in range(2)])
        lines = proc.join(20)
        took = time.monotonic() - started
    assert [x["event"] for x in lines] == ["ready", "send-error", "send-error", "done"], lines
    for err in lines[1:3]:
        assert err["code"] == "ECONNREFUSED" and addr in err["error"], err
    assert lines[-1] | {"closeMs": 0} == {"event": "done", "role": "producer", "sent": 0, "failed": 2,
                                          "closed": True, "closeMs": 0}, lines[-1]  # fmt: skip
    print(f"\n[node] without a server: failed and exited in {took:.2f} s")

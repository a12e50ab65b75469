"""Consumer groups with the stock Java client (rocketmq-client 4.9.8 and 5.3.3) against pocketmq: orderly consumption
with a key selector (also while the group changes), clustering groups, retries through ``%RETRY%<group>``, dead
letters in ``%DLQ%<group>``, and broadcasting.

Every producer and consumer is its own JVM (``pocketmq.compat.GroupDriver``, see java_groups.py); the assertions are
on what the client listeners actually received. A consumer prints each delivery before its listener returns, with
the wall-clock time it was called (``receivedAt``; the JVMs and the server share this machine's clock), plus its
allocation-strategy results and the queues it holds, so rebalances can be timed.

Two servers per module: the default one (stock ``messageDelayLevel``, so a first retry is due after 10 s) and a
fast one whose 18 delay levels are all 1 s (broker.conf through ``--config``), for the dead-letter test.
Run: ``pytest compat_tests/test_java_groups.py -s`` (-s shows the measured rebalance times).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from compat_tests.harness import PocketMQ
from compat_tests.java_driver import CLIENT_VERSIONS
from compat_tests.java_groups import Consumer, GroupClient, unb64
from pocketmq.admin_client import AdminClient

pytestmark = [
    pytest.mark.compat,
    pytest.mark.slow,
]

UNICODE_VALUE = "ünïcødé ✓ 日本語 a=b;c:d"  # GroupDriver's pmqText property
RETRY_DELAY_MS = 10_000  # delay level 3 of the default messageDelayLevel: the first retry of a concurrent consumer
FAST_DELAY_MS = 1_000  # every level of the fast server
CLOCK_SLACK_MS = 50  # ms rounding and clock reads across processes
Line = dict[str, Any]


@pytest.fixture(params=CLIENT_VERSIONS, ids=[f"java-{v}" for v in CLIENT_VERSIONS])
def client(
    request: pytest.FixtureRequest, java_builds: dict[str, tuple[str, str]], tmp_path: Path
) -> Iterator[GroupClient]:
    java, classpath = java_builds[request.param]
    driver = GroupClient(java=java, version=request.param, classpath=classpath, work_dir=tmp_path / "java")
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def names(request: pytest.FixtureRequest, client: GroupClient) -> str:
    """Topic/group name prefix unique per test, version and run (``pid`` keeps reruns on one server apart)."""
    base = request.node.originalname.removeprefix("test_").replace("_", "-")
    return f"jg{client.version.replace('.', '')}-{base}-{os.getpid()}"


@pytest.fixture(scope="module")
def fast_pocketmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketMQ]:
    """A pocketmq whose 18 delay levels are all 1 s, so retries and dead letters take seconds, not minutes."""
    root = Path(tmp_path_factory.mktemp("pocketmq-fast"))
    conf = root / "broker.conf"
    conf.write_text("# every delay level 1 s\nmessageDelayLevel=" + " ".join(["1s"] * 18) + "\n")
    server = PocketMQ(data_dir=root / "data", extra_args=["--config", str(conf)])
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- helpers


def server_log(server: PocketMQ) -> str:
    if server.log_path is None:
        return ""
    try:
        return f"server log ({server.log_path}):\n" + server.log_path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""


def invariants(server: PocketMQ) -> dict[str, Any]:
    """The broker's invariant checker report (docs/testing.md): ``total``, ``counts``, ``recent`` violations."""
    deadline = time.monotonic() + 15  # the HTTP port may open a moment after the broker's
    while True:
        try:
            with urlopen(f"http://127.0.0.1:{server.http_port}/api/invariants", timeout=10) as answer:
                report: dict[str, Any] = json.loads(answer.read())
            return report
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def describe(*procs: Consumer) -> str:
    return "\n".join(p.describe() for p in procs)


def ordered_step(m: Line) -> tuple[str, int]:
    """(key, step) of an ordered message, as carried by its properties, cross-checked with its body and keys."""
    key, step = m["props"]["pmqKey"], int(m["props"]["pmqStep"])
    assert unb64(m["body"]).decode().endswith(f"|{key}|{step}"), m
    assert m["keys"] == [key, f"{key}#{step}"], m
    return key, step


def steps_by_key(messages: list[Line]) -> dict[str, list[tuple[int, int]]]:
    """key -> [(step, receivedAt)] in the consumer's output order (per queue, the order it consumed them)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for m in messages:
        key, step = ordered_step(m)
        out.setdefault(key, []).append((step, m["receivedAt"]))
    return out


def assert_sent_by_key(results: list[Line], keys: int, steps: int) -> dict[str, int]:
    """The ordered sends: every key's steps went, in order, to one queue; returns key -> queue id."""
    assert len(results) == keys * steps
    queue_of: dict[str, int] = {}
    last: dict[int, int] = {}
    for r in results:
        assert queue_of.setdefault(r["key"], r["queueId"]) == r["queueId"], f"key {r['key']} changed queue: {r}"
        assert r["queueOffset"] > last.get(r["queueId"], -1), f"queue offsets out of send order: {r}"
        last[r["queueId"]] = r["queueOffset"]
    assert len(queue_of) == keys
    return queue_of


def check_generated(m: Line, sent: Line, topic: str) -> None:
    """A delivered GroupDriver-generated message equals what was sent: body, tags, keys, user properties, msgId."""
    where = f"message {sent['index']} ({sent['keys'][0]})"
    assert m["body"] == sent["body"], where
    assert m["topic"] == topic, f"{where}: topic {m['topic']}"
    assert m["tags"] == sent["tags"], where
    assert m["keys"] == sent["keys"], where
    assert m["props"] == sent["props"] == {"pmqIndex": str(sent["index"]), "pmqText": UNICODE_VALUE}, (
        f"{where}: user properties {m['props']}; all properties {m['allProps']}"
    )
    assert m["msgId"] == sent["msgId"], f"{where}: msgId (UNIQ_KEY) {m['msgId']} differs from the send result"


def wait_retry_subscription(consumer: Consumer, group: str) -> None:
    """Wait until the consumer pulls its group's retry topic, so its start-up stays out of the retry timings.

    For a brand-new group the broker creates %RETRY%<group> on the first heartbeat, after the client already
    looked its route up in vain at start; the client learns the route during its first rebalance but allocates the
    topic only on the next one: its 20 s timer, as with an Apache broker (which, like pocketmq, notifies the group
    only when members or subscribed topics change, not on the heartbeat that follows the first allocation). The
    retry and dead-letter tests therefore create the retry topic (1 queue, read-write, as the broker would) before
    the consumer starts, so its route is there from the first lookup; the other tests' new groups still go through
    the broker's own creation."""
    retry = f"%RETRY%{group}"
    ready = consumer.event("ready")["at"]
    allocated = consumer.wait_allocated(retry, 1, timeout=45)["at"]
    assert consumer.wait_owned(retry, {0}, timeout=10), f"{consumer.name} does not pull {retry}"
    print(f"\n[{consumer.name}] pulling {retry} {allocated - ready} ms after start")


# --------------------------------------------------------------------------- ordered


def test_orderly_single_consumer(client: GroupClient, pocketmq: PocketMQ, names: str) -> None:
    """8 keys x 200 steps through a key selector; one MessageListenerOrderly consumer gets each key's steps exactly
    once, strictly in order."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-g"
    keys, steps = 8, 200
    violations_before = invariants(pocketmq)["total"]
    client.create_topics(ns, {topic: 8})
    consumer = client.start_consume(
        ns, topic, group, listener="orderly", expect=keys * steps, timeout=120, linger_ms=1000
    )
    producer = client.start_produce(ns, topic, f"{group}-p", names, "ordered", keys=keys, steps=steps)
    queue_of = assert_sent_by_key(producer.results(), keys, steps)
    consumer.join(150)
    stopping = consumer.event("stopping")
    assert stopping["reason"] == "expected", f"{stopping}\n{describe(consumer)}\n{server_log(pocketmq)}"

    got = steps_by_key(consumer.messages)
    assert sorted(got) == sorted(queue_of), f"keys received {sorted(got)}"
    for key, seq in got.items():
        received = [s for s, _ in seq]
        assert received == list(range(steps)), (
            f"key {key} (queue {queue_of[key]}): steps out of order, lost or repeated; first differences "
            f"{[(i, s) for i, s in enumerate(received) if i >= len(range(steps)) or s != i][:10]}"
        )
    assert all(m["topic"] == topic and m["reconsumeTimes"] == 0 for m in consumer.messages)
    # The broker's invariant checker saw the same run and found nothing broken (no false positive on a real client).
    assert (report := invariants(pocketmq))["total"] == violations_before, report["recent"]


def test_orderly_group_change(client: GroupClient, pocketmq: PocketMQ, names: str) -> None:
    """Two orderly consumers of one group while 8 keys x 200 steps stream in: the second joins mid-stream, later
    the first shuts down mid-stream. Queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ) must hand every key over so that
    no step of a key is consumed before all its earlier steps, and none is lost.

    What is asserted, per key (each key has its own queue here, see below):
    - within each consumer's output the key's steps form one run of consecutive steps, strictly increasing — the
      orderly service never skips or goes back within a queue it holds;
    - the two consumers' runs do not overlap in time: the consumer that took the queue over delivered its first
      step of the key no earlier than the previous holder delivered its last (the broker lock is exclusive and a
      holder drops the queue only between two consume calls);
    - so in time order the key's deliveries are run 1 then run 2, and run 2 starts at or before the step after the
      end of run 1: every delivery of step s comes after deliveries of all steps < s, and every step arrives;
    - a step may be delivered twice only as the tail of run 1 repeated at the head of run 2: RocketMQ is
      at-least-once, and the new holder starts from the last committed offset, which may lag the previous holder's
      progress by what it consumed but had not committed. Each such repeat is reported; none happens when the
      previous holder commits on its way out, as a graceful shutdown and a rebalance drop both do.
    A queue only moves from the first consumer to the second (on the join for half the queues, on the leave for
    the rest), so each key has at most one hand-over; both kinds are checked to have happened.

    Timing: a 4.x client that drops a queue on a rebalance while it still holds pulled, unconsumed messages of it
    unlocks that queue only 20 s later (RebalancePushImpl's delayed unlock), and if it shuts down before then the
    broker lock stays until it expires (60 s after its last renewal, as RebalanceLockManager); the joiner gets the
    queue on its next 20 s rebalance after that. Then one key is handed over only after the first consumer left,
    and this test takes about a minute instead of 20 s. The 5.3.3 client has no such delayed unlock.
    """
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-g"
    keys, steps = 8, 200
    total = keys * steps
    violations_before = invariants(pocketmq)["total"]
    client.create_topics(ns, {topic: 8})
    first = client.start_consume(ns, topic, group, name="first", listener="orderly", timeout=180)
    first.wait_allocated(topic, 1, timeout=60)
    # ~75 ms per step (8 sync sends + 50 ms): a stream of ~15 s; the first consumer alone takes the first 15 %.
    producer = client.start_produce(ns, topic, f"{group}-p", names, "ordered", keys=keys, steps=steps, pace_ms=50)
    assert first.wait_count(total * 3 // 20, timeout=60), f"first consumer stalled\n{describe(first)}"
    second = client.start_consume(ns, topic, group, name="second", listener="orderly", timeout=180)
    joined = second.wait_allocated(topic, 2, timeout=60)
    first.wait_allocated(topic, 2, timeout=30)
    # Leave once the second consumer works and over half of the stream has been sent.
    second.wait_count(1, timeout=30)  # not asserted here: see the timing note above
    assert producer.wait_until(lambda lines: sum("index" in x for x in lines) >= total * 11 // 20, timeout=60)
    both = (first, second)
    first.stop()
    first.join(60)
    left_at = first.event("stopping")["at"]
    results = producer.results()
    queue_of = assert_sent_by_key(results, keys, steps)
    assert left_at < results[-1]["sentAt"], "the first consumer left only after the stream ended"
    assert joined["at"] < left_at
    # Consecutive key names hash to consecutive values: one key per queue.
    assert len(set(queue_of.values())) == keys, f"keys share queues: {queue_of}"

    all_bodies = {m["body"] for c in both for m in c.messages}

    def complete(lines: list[Line]) -> bool:
        return len(all_bodies | {x["body"] for x in lines if "msgId" in x}) >= total

    assert second.wait_until(complete, timeout=120), (
        f"messages missing\n{describe(first, second)}\n{server_log(pocketmq)}"
    )
    time.sleep(1)  # stragglers (redeliveries) would show up now
    second.finish()

    runs = {"first": steps_by_key(first.messages), "second": steps_by_key(second.messages)}
    moved_on_join, moved_on_leave, repeats = [], [], {}
    for key, queue in sorted(queue_of.items()):
        per = {name: seq for name, by_key in runs.items() if (seq := by_key.get(key))}
        for name, seq in per.items():
            got = [s for s, _ in seq]
            assert got == list(range(got[0], got[0] + len(got))), (
                f"{name} consumer: key {key} (queue {queue}) not one increasing run of consecutive steps: {got}"
            )
        assert "first" in per and per["first"][0][0] == 0, f"key {key}: the first consumer did not start it at 0"
        run1 = [s for s, _ in per["first"]]
        if "second" not in per:
            raise AssertionError(f"key {key} (queue {queue}) never moved to the second consumer: {run1[-5:]}")
        run2 = [s for s, _ in per["second"]]
        end1 = max(t for _, t in per["first"])
        start2 = min(t for _, t in per["second"])
        assert end1 <= start2, (
            f"key {key} (queue {queue}): the second consumer delivered step {run2[0]} at {start2}, before the first "
            f"consumer's last delivery (step {run1[-1]}) at {end1}"
        )
        assert run2[0] <= run1[-1] + 1, f"key {key}: steps {run1[-1] + 1}..{run2[0] - 1} lost in the hand-over"
        assert run2[-1] == steps - 1, f"key {key}: last step {run2[-1]}"
        # The property itself, over the key's deliveries in time order (run 1, then run 2).
        for i, step in enumerate(merged := run1 + run2):
            assert set(range(step)) <= set(merged[:i]), f"key {key}: step {step} consumed before an earlier step"
        if run2[0] <= run1[-1]:
            repeats[key] = list(range(run2[0], run1[-1] + 1))
        (moved_on_join if start2 < left_at else moved_on_leave).append(key)
    assert moved_on_join and moved_on_leave, f"hand-overs on join {moved_on_join}, on leave {moved_on_leave}"
    # Locks moved, queues were re-pulled from committed offsets: none of it is an invariant violation.
    assert (report := invariants(pocketmq))["total"] == violations_before, report["recent"]
    print(
        f"\n[java-{client.version}] orderly hand-over: {len(moved_on_join)} keys on join, {len(moved_on_leave)} on "
        f"leave; redelivered steps {repeats or 'none'}"
    )


# --------------------------------------------------------------------------- clustering


def test_clustering_three_consumers(client: GroupClient, pocketmq: PocketMQ, names: str) -> None:
    """Three push consumers (three JVMs) of one group share 10,000 messages sent in batches: once all three are
    started and rebalanced, every message is consumed by exactly one of them, from a queue allocated to it."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-g"
    count = 10_000
    client.create_topics(ns, {topic: 8})
    members = [client.start_consume(ns, topic, group, name=f"c{i}", timeout=240) for i in (1, 2)]
    for c in members:
        c.wait_allocated(topic, 2, timeout=60)
    third = client.start_consume(ns, topic, group, name="c3", timeout=240)
    members.append(third)
    alloc = {c.name: set(c.wait_allocated(topic, 3, timeout=60)["mine"]) for c in members}
    assert sorted(q for qs in alloc.values() for q in qs) == list(range(8)), f"allocation {alloc}"
    for c in members:
        assert c.wait_owned(topic, alloc[c.name], timeout=30), f"{c.name} holds {c.owned(topic)}, not {alloc}"

    # How long the group took to make room for the third member (the broker sends NOTIFY_CONSUMER_IDS_CHANGED on
    # its first heartbeat; without it the others would only notice on their 20 s rebalance timer).
    start, ready = third.event("ready")["startedAt"], third.event("ready")["at"]
    mine3 = alloc["c3"]
    timings = {}
    for c in members[:2]:
        allocated = next(x for x in c.allocations(topic) if len(x["cids"]) == 3)["at"]
        released = next(
            x["at"] for x in c.events("owned") if x["at"] >= allocated and not set(x["queues"].get(topic, [])) & mine3
        )
        timings[c.name] = (allocated - start, released - start)
    own3 = next(x["at"] for x in third.events("owned") if set(x["queues"].get(topic, [])) == mine3) - start
    worst = max(released for _, released in timings.values())
    print(
        f"\n[java-{client.version}] rebalance after the third consumer joined (ms from its start() call, which "
        f"returned after its first heartbeat at +{ready - start}): "
        + ", ".join(f"{n} re-allocated +{a} / released its queues +{r}" for n, (a, r) in timings.items())
        + f"; c3 held its queues +{own3}"
    )
    assert worst < 10_000, f"the group took {worst} ms to rebalance (the client timer is 20 s)"

    producer = client.start_produce(ns, topic, f"{group}-p", names, "batch", count=count, batch_size=100)
    sent = producer.results()
    by_body = {r["body"]: r for r in sent}
    assert len(by_body) == count

    def consumed(_: list[Line]) -> bool:
        return len({m["body"] for c in members for m in c.messages}) >= count

    ok = members[0].wait_until(consumed, timeout=120)
    time.sleep(1.5)  # a duplicate would arrive now
    for c in members:
        c.stop()
    for c in members:
        c.finish()
    assert ok, f"only {len({m['body'] for c in members for m in c.messages})} of {count}\n{server_log(pocketmq)}"

    # The group is stable until the first member starts shutting down; each departure then rebalances the rest,
    # which may legitimately redeliver what the leaver consumed but had not committed yet (at-least-once).
    stable_until = min(c.event("stopping")["at"] for c in members)
    seen: Counter[str] = Counter()
    late: list[Line] = []
    for c in members:
        assert c.messages, f"{c.name} consumed nothing"
        for m in c.messages:
            if m["receivedAt"] >= stable_until:
                late.append(m)
                continue
            seen[m["body"]] += 1
            s = by_body[m["body"]]
            assert m["queueId"] in alloc[c.name], f"{c.name} got a message of queue {m['queueId']}, holds {alloc}"
            assert (m["queueId"], m["queueOffset"]) == (s["queueId"], s["queueOffset"]), f"{m} sent as {s}"
            assert m["topic"] == topic and m["reconsumeTimes"] == 0 and m["result"] == "ok"
            assert m["keys"] == s["keys"] and m["props"] == s["props"] and m["tags"] == s["tags"]
    assert set(seen) == set(by_body), f"{len(set(by_body) - set(seen))} messages not consumed while stable"
    dups = {b: n for b, n in seen.items() if n > 1}
    assert not dups, f"{len(dups)} messages consumed more than once, e.g. {list(dups.items())[:3]}"
    assert all(m["body"] in seen for m in late)
    shares = ", ".join(f"{c.name} {sum(m['receivedAt'] < stable_until for m in c.messages)}" for c in members)
    print(f"[java-{client.version}] shares: {shares}; redelivered while the group shut down: {len(late)}")


# --------------------------------------------------------------------------- retry and dead letter


def test_retry_after_reconsume_later(client: GroupClient, pocketmq: PocketMQ, names: str) -> None:
    """RECONSUME_LATER on the first delivery: CONSUMER_SEND_MSG_BACK, then the message comes back through
    %RETRY%<group> no earlier than 10 s later (delay level 3) with reconsumeTimes 1, its original topic restored by
    the client from RETRY_TOPIC, and body, tags, keys, user properties and msgId intact."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-g"
    count = 5
    client.create_topics(ns, {topic: 4, f"%RETRY%{group}": 1})  # see wait_retry_subscription
    consumer = client.start_consume(ns, topic, group, fail="first", expect=count, timeout=90, linger_ms=1500)
    consumer.wait_allocated(topic, 1, timeout=60)
    wait_retry_subscription(consumer, group)
    sent = client.start_produce(ns, topic, f"{group}-p", names, "sync", count=count, binary=True).results()
    consumer.join(90)
    stopping = consumer.event("stopping")
    assert stopping["reason"] == "expected", f"{stopping}\n{describe(consumer)}\n{server_log(pocketmq)}"

    deliveries: dict[str, list[Line]] = {}
    for m in consumer.messages:
        deliveries.setdefault(m["body"], []).append(m)
    for s in sent:
        got = deliveries.get(s["body"], [])
        where = f"message {s['index']}"
        assert [(m["reconsumeTimes"], m["result"]) for m in got] == [(0, "later"), (1, "ok")], (
            f"{where}: deliveries {[(m['reconsumeTimes'], m['result'], m['topic']) for m in got]}"
        )
        failed, retried = got
        check_generated(failed, s, topic)
        check_generated(retried, s, topic)  # topic restored from RETRY_TOPIC by the client
        props = retried["allProps"]
        assert props.get("RETRY_TOPIC") == topic, f"{where}: {props}"
        assert props.get("ORIGIN_MESSAGE_ID"), f"{where}: {props}"
        assert "DELAY" not in props, f"{where}: {props}"
        waited = retried["receivedAt"] - failed["receivedAt"]
        assert waited >= RETRY_DELAY_MS - CLOCK_SLACK_MS, f"{where}: retried after {waited} ms, before level 3 (10 s)"
        assert waited < RETRY_DELAY_MS + 5_000, f"{where}: retried only after {waited} ms"
    waits = [deliveries[s["body"]][1]["receivedAt"] - deliveries[s["body"]][0]["receivedAt"] for s in sent]
    print(f"\n[java-{client.version}] retry waits (ms): {waits}")


def test_dead_letter_after_max_reconsume(client: GroupClient, fast_pocketmq: PocketMQ, names: str) -> None:
    """setMaxReconsumeTimes(2) and a listener that always fails: each message is delivered with reconsumeTimes 0,
    1, 2 (through the delay levels: 1 s each on this server), then lands in %DLQ%<group>, from where a consumer
    subscribed to that topic gets it intact, reconsumeTimes 3, RETRY_TOPIC naming the original topic."""
    server = fast_pocketmq
    ns, topic, group = server.namesrv_addr, f"{names}-t", f"{names}-g"
    dlq = f"%DLQ%{group}"
    count = 3
    client.create_topics(ns, {topic: 4, f"%RETRY%{group}": 1})  # see wait_retry_subscription
    failing = client.start_consume(ns, topic, group, name="failing", fail="always", max_reconsume=2, timeout=120)
    failing.wait_allocated(topic, 1, timeout=60)
    wait_retry_subscription(failing, group)
    sent = client.start_produce(ns, topic, f"{group}-p", names, "sync", count=count, binary=True).results()

    def third_failures(lines: list[Line]) -> bool:
        return sum(1 for x in lines if x.get("reconsumeTimes") == 2) >= count

    assert failing.wait_until(third_failures, timeout=60), f"{describe(failing)}\n{server_log(server)}"
    time.sleep(1)  # the third send-back, which creates the dead-letter topic
    reader = client.start_consume(
        ns, dlq, f"{group}-dlq-reader", name="dlq-reader", expect=count, timeout=60, linger_ms=1000
    )
    reader.join(90)
    time.sleep(FAST_DELAY_MS / 1000)  # a fourth delivery (no dead-lettering) would have come by now
    failing.finish()
    assert reader.event("stopping")["reason"] == "expected", f"{describe(reader)}\n{server_log(server)}"

    by_body: dict[str, list[Line]] = {}
    for m in failing.messages:
        by_body.setdefault(m["body"], []).append(m)
    dead = {m["body"]: m for m in reader.messages}
    assert len(reader.messages) == count
    for s in sent:
        where = f"message {s['index']}"
        got = by_body.get(s["body"], [])
        assert [m["reconsumeTimes"] for m in got] == [0, 1, 2], f"{where}: deliveries {got}"
        for m in got:
            check_generated(m, s, topic)
        for earlier, later in itertools.pairwise(got):
            waited = later["receivedAt"] - earlier["receivedAt"]
            assert waited >= FAST_DELAY_MS - CLOCK_SLACK_MS, f"{where}: redelivered after {waited} ms"
        d = dead.get(s["body"])
        assert d is not None, f"{where} not in {dlq}"
        check_generated(d, s, dlq)  # a dead letter keeps its dead-letter topic (no restore for another group)
        assert d["reconsumeTimes"] == 3, f"{where}: {d['reconsumeTimes']}"
        assert d["queueId"] == 0, f"{where}: {dlq} has one queue, got {d['queueId']}"
        assert d["allProps"].get("RETRY_TOPIC") == topic, f"{where}: {d['allProps']}"
        assert d["allProps"].get("ORIGIN_MESSAGE_ID"), f"{where}: {d['allProps']}"


# --------------------------------------------------------------------------- broadcasting


def test_broadcasting_three_consumers(client: GroupClient, pocketmq: PocketMQ, names: str) -> None:
    """Three BROADCASTING consumers of one group (three JVMs) each get all 300 messages, exactly once each, and
    (as broadcasting clients do) hold every queue and no retry topic."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-g"
    count = 300
    client.create_topics(ns, {topic: 4})
    consumers = [
        client.start_consume(
            ns, topic, group, name=f"b{i}", model="broadcasting", expect=count, timeout=90, linger_ms=1000
        )
        for i in (1, 2, 3)
    ]
    for c in consumers:
        assert c.wait_event("ready", 60)["messageModel"] == "BROADCASTING"
        assert c.wait_owned(topic, {0, 1, 2, 3}, timeout=60), f"{c.name} holds {c.owned(topic)}\n{c.describe()}"
    sent = client.start_produce(ns, topic, f"{group}-p", names, "batch", count=count, batch_size=30).results()
    by_body = {s["body"]: s for s in sent}
    for c in consumers:
        c.join(120)
        assert c.event("stopping")["reason"] == "expected", f"{c.describe()}\n{server_log(pocketmq)}"
        seen = Counter(m["body"] for m in c.messages)
        assert set(seen) == set(by_body), f"{c.name}: {len(set(seen) & set(by_body))} of {count}"
        assert max(seen.values()) == 1, f"{c.name}: duplicates {[b for b, n in seen.items() if n > 1][:3]}"
        for m in c.messages:
            s = by_body[m["body"]]
            assert (m["queueId"], m["queueOffset"]) == (s["queueId"], s["queueOffset"])
            assert m["topic"] == topic and m["keys"] == s["keys"] and m["props"] == s["props"]
        topics = {t for x in c.events("owned") for t in x["queues"]}
        assert topics == {topic}, f"{c.name} held queues of {topics}"
        assert not c.events("allocate"), f"{c.name} used the allocation strategy in broadcasting mode"


def test_an_orderly_skip_forced_by_a_fault_is_caught(client: GroupClient, pocketmq: PocketMQ, names: str) -> None:
    """Order broken on purpose: one key's 15 steps in a one-queue topic, an orderly consumer pulling 5 at a time,
    and a fault rule that answers its second pull with PULL_NOT_FOUND and nextBeginOffset 10. The stock client
    moves on to offset 10, so it never sees steps 5..9; the broker's invariant checker reports the skip with the
    offsets, and the rule counts its one injection."""
    ns, topic, group = pocketmq.namesrv_addr, f"{names}-t", f"{names}-g"
    admin = AdminClient(f"http://127.0.0.1:{pocketmq.http_port}")
    client.create_topics(ns, {topic: 1})
    producer = client.start_produce(ns, topic, f"{group}-p", names, "ordered", keys=1, steps=15)
    assert [r["queueOffset"] for r in producer.results()] == list(range(15))
    before = invariants(pocketmq)["counts"]["orderly_skip"]
    header = {"suggestWhichBrokerId": 0, "nextBeginOffset": 10, "minOffset": 0, "maxOffset": 15}
    rule = admin.post("/api/faults", {"code": "PULL_MESSAGE", "topic": topic, "group": group, "after": 1, "times": 1,
                                      "respond": "PULL_NOT_FOUND", "header": header})  # fmt: skip
    try:
        consumer = client.start_consume(ns, topic, group, listener="orderly", start_from="first", pull_batch_size=5,
                                        expect=10, timeout=60, linger_ms=1000)  # fmt: skip
        consumer.join(90)
        stopping = consumer.event("stopping")
        assert stopping["reason"] == "expected", f"{stopping}\n{describe(consumer)}\n{server_log(pocketmq)}"
        [rule_after] = [r for r in admin.get("/api/faults")["rules"] if r["id"] == rule["id"]]
    finally:
        admin.post("/api/faults/remove", {"id": rule["id"]})

    assert [ordered_step(m)[1] for m in consumer.messages] == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    assert (rule_after["injected"], rule_after["exhausted"]) == (1, True)
    report = invariants(pocketmq)
    assert report["counts"]["orderly_skip"] == before + 1, report["recent"]
    [skip] = [v for v in report["recent"] if v["invariant"] == "orderly_skip" and v.get("group") == group]
    assert (skip["topic"], skip["queue"], skip["pullOffset"], skip["frontier"]) == (topic, 0, 10, 5), skip
    assert "5..9" in skip["message"], skip

"""Delayed and scheduled messages with the stock Java client (rocketmq-client 4.9.8 and 5.3.3) against pocketmq.

``Message.setDelayTimeLevel`` (both versions) and ``Message.setDeliverTimeMs`` (5.x only) through real client JVMs
(see java_driver.py): every message must arrive no earlier than it is due and soon after, intact (body, tags, keys,
user properties, msgId), in the queue it was sent to, with the properties Apache's brokers give a delivered
message — delay levels: ``REAL_TOPIC``/``REAL_QID`` kept, ``DELAY`` gone (ScheduleMessageService); timers:
``TIMER_DELIVER_MS`` kept, ``REAL_TOPIC``/``REAL_QID`` gone (TimerMessageStore). One test stops the broker
(``kill -9``, and gracefully) while messages are pending: the overdue ones must come right after the restart, the later
ones on time, each exactly once.

Timing is measured with the wall clock of this machine, shared by the driver JVMs and the server: a send is
bracketed by ``sentAt``/``sentDone`` (driver, ms), the consumer stamps ``receivedAt`` when the listener is called.
Run: ``pytest compat_tests/test_java_delay.py -s`` (-s shows the observed lateness).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import PocketMQ
from compat_tests.java_driver import CLIENT_VERSIONS, Consumer, JavaClient, Message

pytestmark = [
    pytest.mark.compat,
    pytest.mark.slow,
]

DELAY_LEVEL_MS = {1: 1_000, 2: 5_000, 3: 10_000, 4: 30_000, 5: 60_000}  # the default messageDelayLevel
CLOCK_SLACK_MS = 50  # a message may seem to arrive this much before it is due (ms rounding, clock reads)
# Due -> received: the scheduler hands over at the due time and wakes the consumer's held long poll, so this is
# normally tens of ms; generous for two busy cores running several JVMs.
LATE_BOUND_MS = 3_000
WARMUP = 8  # plain messages that create the topic and prove the consumer is pulling before timed ones are sent


@pytest.fixture
def client(
    request: pytest.FixtureRequest, java_builds: dict[str, tuple[str, str]], tmp_path: Path
) -> Iterator[JavaClient]:
    """The client version named by the test's indirect ``client`` parameter."""
    java, classpath = java_builds[request.param]
    driver = JavaClient(java=java, version=request.param, classpath=classpath, work_dir=tmp_path / "java")
    try:
        yield driver
    finally:
        driver.close()


def versions(*which: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("client", which, indirect=True, ids=[f"java-{v}" for v in which])


@pytest.fixture
def names(request: pytest.FixtureRequest, client: JavaClient) -> str:
    base = request.node.originalname.removeprefix("test_").replace("_", "-")
    return f"jd{client.version.replace('.', '')}-{base}-{os.getpid()}"


# --------------------------------------------------------------------------- helpers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def timed_messages(prefix: str, count: int, **timing: int) -> list[Message]:
    """Messages with unique bodies and keys (the first key identifies the message), user properties and a timing."""
    return [
        Message(
            body=f"{prefix}#{i}|".encode() + bytes(range(256)),
            tags=f"tag{i % 2}",
            keys=[f"{prefix}-key-{i}", f"{prefix}-shared"],
            props={"pmqIndex": str(i), "pmqText": "ünïcødé ✓ a=b;c:d", "pmq-prefix": prefix},
            **timing,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]


def server_log(server: PocketMQ) -> str:
    if server.log_path is None:
        return ""
    try:
        return f"server log ({server.log_path}):\n" + server.log_path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""


def start_warm_consumer(
    client: JavaClient, server: PocketMQ, topic: str, group: str, expect: int, **kwargs: Any
) -> Consumer:
    """Create ``topic`` with plain messages, start a consumer and return once it received them all: its rebalance
    is done and it long-polls every queue, so the timed messages sent next are measured from due to received."""
    warmup = timed_messages(f"{topic}-warmup", WARMUP)
    client.produce(server.namesrv_addr, topic, f"{group}-p", "sync", warmup)
    consumer = client.start_consume(server.namesrv_addr, topic, group, expect=WARMUP + expect, **kwargs)
    consumer.wait_ready()
    assert consumer.wait_bodies([m.body for m in warmup], timeout=60), (
        f"the consumer did not get the warm-up messages\n{consumer.describe()}\n{server_log(server)}"
    )
    return consumer


def by_key(received: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    index: dict[str, list[dict[str, Any]]] = {}
    for m in received:
        index.setdefault(m["keys"][0] if m["keys"] else "", []).append(m)
    return index


def expected_due(msg: Message, result: dict[str, Any]) -> tuple[int, int]:
    """Earliest and latest due time the broker can have computed for a sent message (its clock read at the send
    lies between the driver's ``sentAt`` and ``sentDone``)."""
    if msg.delay_level is not None:
        delay = DELAY_LEVEL_MS[msg.delay_level]
        return result["sentAt"] + delay, result["sentDone"] + delay
    if "deliverTimeMs" in result:
        at = result["deliverTimeMs"]
        return max(at, result["sentAt"]), max(at, result["sentDone"])  # a time in the past is due at once
    return result["sentAt"], result["sentDone"]


def check_delivered(
    topic: str,
    sent: list[Message],
    results: list[dict[str, Any]],
    received: list[dict[str, Any]],
    server: PocketMQ,
    late_bound_ms: int = LATE_BOUND_MS,
    label: str = "",
) -> list[int]:
    """Each sent message arrived exactly once, intact, where and when it should, with Apache's delivered-message
    properties. Returns the lateness (received - latest due, ms) per message."""
    index = by_key(received)
    lateness = []
    for i, (msg, res) in enumerate(zip(sent, results, strict=True)):
        key = msg.keys[0]
        where = f"{label} message {i} ({key}, delayLevel={msg.delay_level}, deliverTimeMs={res.get('deliverTimeMs')})"
        copies = index.get(key, [])
        assert copies, f"{where} never arrived\n{server_log(server)}"
        assert len(copies) == 1, f"{where} delivered {len(copies)} times: {[c['receivedAt'] for c in copies]}"
        got = copies[0]
        props = got["allProps"]
        assert got["body"] == b64(msg.body), where
        assert got["topic"] == topic, where
        assert got["tags"] == msg.tags, where
        assert got["keys"] == msg.keys, where
        assert got["props"] == msg.props, f"{where}: user properties differ; all properties {props}"
        assert got["msgId"] == res["msgId"], f"{where}: msgId (UNIQ_KEY) differs from the send result"
        assert got["queueId"] == res["queueId"], f"{where}: delivered to queue {got['queueId']}, sent to {res}"
        assert got["reconsumeTimes"] == 0, where
        assert got["storeHost"] == server.broker_addr, where
        assert res["sentAt"] <= got["bornTimestamp"] <= res["sentDone"], f"{where}: born timestamp {got}"

        earliest, latest = expected_due(msg, res)
        # Apache's properties of a delivered message.
        if msg.delay_level is not None:
            assert props.get("REAL_TOPIC") == topic, f"{where}: {props}"
            assert props.get("REAL_QID") == str(got["queueId"]), f"{where}: {props}"
            assert "DELAY" not in props, f"{where}: DELAY still set on the delivered message: {props}"
        else:
            assert "REAL_TOPIC" not in props and "REAL_QID" not in props, f"{where}: {props}"
            if "deliverTimeMs" in res:
                assert props.get("TIMER_DELIVER_MS") == str(res["deliverTimeMs"]), f"{where}: {props}"
        # Timing: never before due; handed over (storeTimestamp) and received soon after.
        assert got["storeTimestamp"] >= earliest - CLOCK_SLACK_MS, (
            f"{where}: handed over {earliest - got['storeTimestamp']} ms before it was due"
        )
        assert got["receivedAt"] >= earliest - CLOCK_SLACK_MS, (
            f"{where}: received {earliest - got['receivedAt']} ms before it was due"
        )
        late = got["receivedAt"] - latest
        assert late <= late_bound_ms, (
            f"{where}: received {late} ms after it was due (bound {late_bound_ms} ms); "
            f"handed over {got['storeTimestamp'] - latest} ms after due\n{server_log(server)}"
        )
        lateness.append(late)
    return lateness


def report(label: str, lateness: list[int]) -> None:
    print(f"\n[{label}] lateness ms (received - due): min {min(lateness)} max {max(lateness)} all {lateness}")


# --------------------------------------------------------------------------- tests


@versions(*CLIENT_VERSIONS)
def test_delay_levels(client: JavaClient, pocketmq: PocketMQ, names: str) -> None:
    """setDelayTimeLevel(1) and (2) (1 s, 5 s): each arrives no earlier than due, within a bound after, intact,
    with REAL_TOPIC/REAL_QID and without DELAY."""
    topic, group = f"{names}-t", f"{names}-g"
    sent = timed_messages(f"{names}-l1", 4, delay_level=1) + timed_messages(f"{names}-l2", 4, delay_level=2)
    consumer = start_warm_consumer(client, pocketmq, topic, group, expect=len(sent), timeout=60)
    results = client.produce(pocketmq.namesrv_addr, topic, f"{group}-p", "sync", sent)
    assert all(r["status"] == "SEND_OK" for r in results), results
    received = consumer.collect([m.body for m in sent], timeout=30, linger=1.0)
    lateness = check_delivered(topic, sent, results, received, pocketmq, label=client.version)
    report(f"{client.version} delay levels 1, 2", lateness)


@versions("5.3.3")
def test_deliver_time_ms(client: JavaClient, pocketmq: PocketMQ, names: str) -> None:
    """setDeliverTimeMs(now + 2 s) arrives no earlier than that and soon after; a time in the past at once.
    Both keep TIMER_DELIVER_MS and carry no REAL_TOPIC/REAL_QID."""
    topic, group = f"{names}-t", f"{names}-g"
    future = timed_messages(f"{names}-future", 4, deliver_after_ms=2_000)
    past = timed_messages(f"{names}-past", 2, deliver_after_ms=-60_000)
    sent = future + past
    consumer = start_warm_consumer(client, pocketmq, topic, group, expect=len(sent), timeout=60)
    results = client.produce(pocketmq.namesrv_addr, topic, f"{group}-p", "sync", sent)
    assert all(r["status"] == "SEND_OK" for r in results), results
    received = consumer.collect([m.body for m in sent], timeout=30, linger=1.0)
    lateness = check_delivered(topic, sent, results, received, pocketmq, label=client.version)
    report(f"{client.version} deliverTimeMs +2 s", lateness[: len(future)])
    report(f"{client.version} deliverTimeMs in the past", lateness[len(future) :])


@versions("4.9.8")
def test_deliver_time_ms_is_unsupported_on_4x(client: JavaClient, pocketmq: PocketMQ, names: str) -> None:
    """4.x clients have no Message.setDeliverTimeMs: the driver says so instead of sending something else."""
    sent = timed_messages(names, 1, deliver_after_ms=2_000)
    producer = client.start_produce(pocketmq.namesrv_addr, f"{names}-t", f"{names}-p", "sync", sent)
    event = producer.unsupported()
    assert event is not None and event["feature"] == "Message.setDeliverTimeMs", producer.lines
    assert not [x for x in producer.lines if "index" in x], "the driver sent something"


@versions("5.3.3")
@pytest.mark.parametrize("kill", [True, False], ids=["kill-9", "sigterm"])
def test_pending_messages_survive_a_broker_restart(client: JavaClient, tmp_path: Path, names: str, kill: bool) -> None:
    """A running consumer; delay-level 2 (5 s) and +4 s timer messages fall due while the broker is down (after a
    kill -9, or a graceful stop), delay-level 3 (10 s) and +15 s timer messages after its restart. The overdue ones
    arrive right after the restart, the later ones on time; each exactly once.

    (A 5.x client, because a 4.9.8 one waits out its 30 s pull timeout for a long poll whose connection died.)"""
    server = PocketMQ(data_dir=tmp_path / "pocketmq" / "data")
    server.data_dir.parent.mkdir(parents=True)
    server.start()
    try:
        topic, group = f"{names}-t", f"{names}-g"
        overdue = timed_messages(f"{names}-l2", 3, delay_level=2) + timed_messages(
            f"{names}-t4", 3, deliver_after_ms=4_000
        )
        later = timed_messages(f"{names}-l3", 3, delay_level=3) + timed_messages(
            f"{names}-t15", 3, deliver_after_ms=15_000
        )
        sent = overdue + later
        # Heartbeats every second: a restarted broker learns the group's subscription from the next heartbeat.
        consumer = start_warm_consumer(client, server, topic, group, expect=len(sent), timeout=90, heartbeat_ms=1000)
        results = client.produce(server.namesrv_addr, topic, f"{group}-p", "sync", sent)
        assert all(r["status"] == "SEND_OK" for r in results), results
        overdue_results = results[: len(overdue)]
        first_due = min(expected_due(m, r)[0] for m, r in zip(overdue, overdue_results, strict=True))
        killed_at = time.time() * 1000
        assert killed_at < first_due - 500, f"too slow to kill the broker before {first_due} (now {killed_at})"
        server.stop(kill=kill)
        last_overdue = max(expected_due(m, r)[1] for m, r in zip(overdue, overdue_results, strict=True))
        time.sleep(max(0.0, (last_overdue + 1_000) / 1000 - time.time()))
        assert not [m for m in consumer.messages if m["keys"][0].startswith(names) and "warmup" not in m["keys"][0]]
        server.start()
        restarted_at = int(time.time() * 1000)

        received = consumer.collect([m.body for m in sent], timeout=60, linger=2.0)
        received = [m for m in received if "warmup" not in m["keys"][0]]
        assert len(received) == len(sent), (
            f"{len(received)} deliveries for {len(sent)} messages: "
            f"{sorted(m['keys'][0] for m in received)}\n{consumer.describe()}\n{server_log(server)}"
        )
        # Overdue: due while the broker was down, so measured from the restart (the client reconnects, retries its
        # pulls and heartbeats: a few seconds).
        check_delivered(topic, overdue, overdue_results, received, server, late_bound_ms=10**9, label="overdue")
        after_restart = [by_key(received)[m.keys[0]][0]["receivedAt"] - restarted_at for m in overdue]
        handed_over = [by_key(received)[m.keys[0]][0]["storeTimestamp"] - restarted_at for m in overdue]
        assert max(after_restart) <= 8_000, f"overdue messages came {after_restart} ms after the restart"
        how = "kill -9" if kill else "sigterm"
        print(f"\n[{client.version} {how}] overdue received ms after restart: {after_restart}")
        print(f"[{client.version} {how}] overdue handed over ms after restart: {handed_over}")
        lateness = check_delivered(topic, later, results[len(overdue) :], received, server, label="later")
        report(f"{client.version} {how}, due after restart (level 3, +15 s)", lateness)
    finally:
        server.stop()

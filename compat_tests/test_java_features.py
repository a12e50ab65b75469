"""The stock Java client (rocketmq-client 4.9.8 and 5.3.3) against pocketmq: SQL92 property filters, request-reply,
the lite-pull and the (deprecated) pull consumer with committed offsets, message query by key and by id, and a
producer without a server.

Every client is its own JVM (``pocketmq.compat.FeatureDriver`` through java_features.py; plain sends through
``pocketmq.compat.Driver``); the assertions are on what the client API returned. The topics of a client version are
created once (one JVM) before its first test. Run: ``pytest compat_tests/test_java_features.py``.
"""

from __future__ import annotations

import base64
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compat_tests import harness
from compat_tests.harness import PocketMQ
from compat_tests.java_driver import CLIENT_VERSIONS, JavaClient, Message
from compat_tests.java_features import FeatureClient, Request
from compat_tests.java_groups import GroupClient, GroupProcess

pytestmark = [
    pytest.mark.compat,
    pytest.mark.slow,
]

Line = dict[str, Any]
UNICODE_VALUE = "ünïcødé ✓ 日本語 a=b;c:d"
SUBSCRIPTION_PARSE_FAILED = 23  # ResponseCode
NO_MESSAGE = 208  # ResponseCode: what MQAdminImpl.queryMessage raises when no broker found the key
REQUEST_TIMEOUT_EXCEPTION = 10006  # ClientErrorCode
TOPICS = {"sql": 4, "rr-sync": 2, "rr-async": 2, "silent": 1, "lite": 2, "assign": 2, "pull": 2, "query": 2}


@dataclass
class Clients:
    version: str
    prefix: str  # topic/group names of this version and run
    features: FeatureClient
    plain: JavaClient  # Driver: sends

    def topic(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def send(self, ns: str, name: str, messages: list[Message]) -> list[Line]:
        results = self.plain.produce(ns, self.topic(name), f"{self.prefix}-{name}-producer", "sync", messages)
        assert [r["status"] for r in results] == ["SEND_OK"] * len(messages), results
        return results


@pytest.fixture(scope="module", params=CLIENT_VERSIONS, ids=[f"java-{v}" for v in CLIENT_VERSIONS])
def built(request: pytest.FixtureRequest, java_builds: dict[str, tuple[str, str]]) -> tuple[str, str, str]:
    """(version, java, classpath) of the module's client version (compat_tests/conftest.py builds them)."""
    java, classpath = java_builds[request.param]
    return request.param, java, classpath


@pytest.fixture(scope="module")
def prefix(built: tuple[str, str, str], pocketmq: PocketMQ, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Create this version's topics (name -> queues in TOPICS) in one JVM; return their name prefix."""
    version, java, classpath = built
    prefix = f"jf{version.replace('.', '')}-{os.getpid()}"
    work = Path(tmp_path_factory.mktemp(f"java-{version}-topics"))
    creator = GroupClient(java=java, version=version, classpath=classpath, work_dir=work)
    try:
        creator.create_topics(pocketmq.namesrv_addr, {f"{prefix}-{n}": q for n, q in TOPICS.items()})
    finally:
        creator.close()
    return prefix


@pytest.fixture
def clients(built: tuple[str, str, str], prefix: str, tmp_path: Path) -> Iterator[Clients]:
    version, java, classpath = built
    features = FeatureClient(java=java, version=version, classpath=classpath, work_dir=tmp_path / "java")
    plain = JavaClient(java=java, version=version, classpath=classpath, work_dir=tmp_path / "java")
    try:
        yield Clients(version, prefix, features, plain)
    finally:
        features.close()
        plain.close()


# --------------------------------------------------------------------------- helpers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def messages(p: GroupProcess) -> list[Line]:
    return [x for x in p.snapshot() if "msgId" in x and "event" not in x]


def one_line(lines: list[Line], name: str) -> Line:
    found = [x for x in lines if x.get("event") == name]
    assert len(found) == 1, f"{len(found)} {name!r} events"
    return found[0]


def one(p: GroupProcess, name: str) -> Line:
    found = p.events(name)
    assert len(found) == 1, f"{p.name}: {len(found)} {name!r} events\n{p.describe()}"
    return found[0]


def assert_intact(got: Line, sent: Message, result: Line, topic: str, where: str) -> None:
    """A received/queried message is the one sent: content, ids and position (from the send result)."""
    assert got["body"] == b64(sent.body), f"{where}: body"
    assert got["topic"] == topic, f"{where}: topic {got['topic']}"
    assert got["tags"] == sent.tags, f"{where}: tags {got['tags']}"
    assert got["keys"] == sent.keys, f"{where}: keys {got['keys']}"
    assert got["props"] == sent.props, f"{where}: user properties {got['allProps']}"
    assert got["msgId"] == result["msgId"], f"{where}: msgId {got['msgId']} != {result['msgId']}"
    assert got["offsetMsgId"] == result["offsetMsgId"], f"{where}: offsetMsgId"
    assert (got["queueId"], got["queueOffset"]) == (result["queueId"], result["queueOffset"]), f"{where}: position"
    assert got["reconsumeTimes"] == 0, where


def plain_messages(tag: str, count: int) -> list[Message]:
    rng = random.Random(tag)
    return [
        Message(
            body=f"{tag}#{i}|".encode() + rng.randbytes(rng.randrange(1, 300)),
            tags=f"t{i % 2}",
            keys=[f"{tag}-{i}"],
            props={"n": str(i), "text": UNICODE_VALUE},
        )
        for i in range(count)
    ]


# --------------------------------------------------------------------------- SQL92


SQL_FILTERS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    # (expression, the same predicate in Python over the message's tag and properties; an absent property is None,
    # and a comparison with it is never TRUE, so None never satisfies a conjunct)
    (
        "a BETWEEN 3 AND 7 AND b IN ('x', 'y')",
        lambda m: m["a"] is not None and 3 <= m["a"] <= 7 and m["b"] in ("x", "y"),
    ),
    (
        "c IS NULL AND a >= 5 AND (TAGS = 'tA' OR b = 'z')",
        lambda m: m["c"] is None and m["a"] is not None and m["a"] >= 5 and (m["tag"] == "tA" or m["b"] == "z"),
    ),
    (
        "b IS NOT NULL AND b <> 'x' AND TAGS IS NOT NULL AND (c = 'on' OR a < 3)",
        lambda m: (
            m["b"] is not None
            and m["b"] != "x"
            and m["tag"] is not None
            and (m["c"] == "on" or (m["a"] is not None and m["a"] < 3))
        ),
    ),
]


def sql_messages(tag: str) -> tuple[list[Message], list[dict[str, Any]]]:
    """Every combination of a (absent or 1..10), b (absent, x, y, z), c (absent, on), tag (none, tA, tB), sampled."""
    rng = random.Random(tag)
    msgs, attrs = [], []
    for i in range(60):
        a = rng.choice([None, *range(1, 11)])
        b = rng.choice([None, "x", "y", "z"])
        c = rng.choice([None, "on"])
        t = rng.choice([None, "tA", "tB"])
        props = {"i": str(i), **({"a": str(a)} if a is not None else {}), **({"b": b} if b else {})}
        props |= {"c": c} if c else {}
        msgs.append(
            Message(body=f"{tag}#{i}|a={a}|b={b}|c={c}|t={t}".encode(), tags=t, keys=[f"{tag}-{i}"], props=props)
        )
        attrs.append({"a": a, "b": b, "c": c, "tag": t})
    return msgs, attrs


def test_sql92_filter(clients: Clients, pocketmq: PocketMQ) -> None:
    """Three push consumers (own groups), each subscribed with MessageSelector.bySql over user properties and TAGS
    (numbers, strings, BETWEEN, IN, IS [NOT] NULL, <>, OR): each receives exactly the messages its expression
    matches, intact, once, and nothing else (the Java client does not filter SQL92 itself, the broker does)."""
    ns, topic = pocketmq.namesrv_addr, clients.topic("sql")
    sent, attrs = sql_messages(topic)
    consumers = [
        clients.features.sql_consume(ns, topic, f"{topic}-g{i}", sql, name=f"sql{i}")
        for i, (sql, _) in enumerate(SQL_FILTERS)
    ]
    for c in consumers:
        c.wait_event("ready", 60)
    results = clients.send(ns, "sql", sent)
    expected = [{i for i, m in enumerate(attrs) if match(m)} for _, match in SQL_FILTERS]
    for (sql, _), want in zip(SQL_FILTERS, expected, strict=True):
        assert 0 < len(want) < len(sent), f"the sample does not exercise {sql!r}: {len(want)} of {len(sent)} match"
    for c, want in zip(consumers, expected, strict=True):
        bodies = {b64(sent[i].body) for i in want}
        assert c.wait_until(lambda lines, bodies=bodies: bodies <= {x.get("body") for x in lines}, 60), (
            f"{c.name}: missing {len(bodies - {m['body'] for m in messages(c)})} of {len(bodies)}\n{c.describe()}"
        )
    time.sleep(2)  # a message the filter should have dropped would arrive by now (the consumers are long-polling)
    for c in consumers:
        c.finish()
    index = {b64(m.body): i for i, m in enumerate(sent)}
    for c, (sql, _), want in zip(consumers, SQL_FILTERS, expected, strict=True):
        got = [index.get(m["body"], -1) for m in messages(c)]
        unexpected = sorted(set(got) - want)
        assert not unexpected, f"{sql!r} delivered non-matching {[attrs[i] if i >= 0 else '?' for i in unexpected]}"
        assert sorted(got) == sorted(want), f"{sql!r}: duplicates or missing: {sorted(got)} vs {sorted(want)}"
        for m in messages(c):
            i = index[m["body"]]
            assert_intact(m, sent[i], results[i], topic, f"{sql!r} message {i}")


def test_sql92_invalid_expression(clients: Clients, pocketmq: PocketMQ) -> None:
    """An expression the broker cannot compile: the push consumer's start() fails (CHECK_CLIENT_CONFIG answered
    SUBSCRIPTION_PARSE_FAILED) with an MQClientException carrying that code and the parse error, promptly."""
    ns, topic = pocketmq.namesrv_addr, clients.topic("sql")
    c = clients.features.sql_consume(ns, topic, f"{topic}-bad", "a > AND (b = 'x'", name="sql-bad")
    lines = c.finish(60)
    assert not [x for x in lines if x.get("event") == "ready"], f"the consumer started\n{c.describe()}"
    err = one(c, "startError")
    assert err["class"] == "org.apache.rocketmq.client.exception.MQClientException", err
    assert err["responseCode"] == SUBSCRIPTION_PARSE_FAILED, err
    assert err["errorMessage"], err
    # The broker answers CHECK_CLIENT_CONFIG within milliseconds; what is measured here is the whole start(). In
    # about 1 run in 8 the 5.3.3 client then spends another 3 s in its own failure path after every request was
    # answered (seen with a request trace, against this broker and the one before issue 10 alike), so the bound
    # is one client timeout above the 3 s a start() waiting for an unanswered request would take.
    assert err["elapsedMs"] < 6500, f"start() took {err['elapsedMs']} ms to fail (mqClientApiTimeout is 3 s)"


# --------------------------------------------------------------------------- request-reply


REQUEST_TIMEOUT_MS = 10_000
SILENT_TIMEOUT_MS = 1500  # requests to the topic nobody answers


def run_requests(clients: Clients, ns: str, mode: str, count: int) -> tuple[list[Line], GroupProcess, list[Message]]:
    """A responder (push consumer replying with MessageUtil.createReplyMessage + send, SEND_REPLY_MESSAGE_V2) and a
    requester making ``count`` requests in ``mode`` plus one more to a topic nobody consumes (always last)."""
    topic = clients.topic(f"rr-{mode}")
    responder = clients.features.respond(ns, topic, f"{topic}-responder")
    responder.wait_event("ready", 60)
    sent = plain_messages(f"{topic}-{mode}", count)
    silent = Message(body=b"nobody answers", props={"silent": "yes"})
    requests = [Request(mode, m) for m in sent]
    requests.append(Request(mode, silent, topic=clients.topic("silent"), timeout_ms=SILENT_TIMEOUT_MS))
    requester = clients.features.request(ns, topic, f"{topic}-requester", requests, REQUEST_TIMEOUT_MS)
    lines = requester.finish(60)
    responder.wait_until(lambda ls: sum(x.get("event") == "replied" for x in ls) >= count, 30)  # checked later
    responder.finish()
    return lines, responder, sent


def check_replies(lines: list[Line], responder: GroupProcess, sent: list[Message], version: str) -> None:
    """Every request got its own reply (body, user properties, CORRELATION_ID), from a responder that saw that
    request intact, within a few seconds."""
    replies = {x["index"]: x for x in lines if x.get("event") == "reply"}
    errors = [x for x in lines if x.get("event") == "requestError" and x["index"] < len(sent)]
    assert not errors, f"requests failed: {errors}\n{responder.describe()}"
    assert sorted(replies) == list(range(len(sent))), f"replies for {sorted(replies)}"
    handled = {x["request"]["allProps"].get("CORRELATION_ID"): x["request"] for x in responder.events("request")}
    replied = {x["requestMsgId"]: x for x in responder.events("replied")}
    assert len({r["correlationId"] for r in replies.values()}) == len(sent), "correlation ids are not unique"
    for i, msg in enumerate(sent):
        r, where = replies[i], f"request {i} ({replies[i]['mode']})"
        reply = r["reply"]
        assert reply["body"] == b64(b"reply:" + msg.body), f"{where}: reply body {reply['body']}"
        req = handled.get(r["correlationId"])
        assert req is not None, f"{where}: the responder never saw correlation id {r['correlationId']}"
        assert req["body"] == b64(msg.body), f"{where}: the responder got another request's body"
        assert req["props"] == msg.props and req["keys"] == msg.keys and req["tags"] == msg.tags, where
        assert req["allProps"].get("REPLY_TO_CLIENT"), f"{where}: {req['allProps']}"
        assert replied[req["msgId"]].get("status") == "SEND_OK", replied[req["msgId"]]
        assert replied[req["msgId"]]["replyTopic"] == "DefaultCluster_REPLY_TOPIC", replied[req["msgId"]]
        echoed = {f"echo-{k}": v for k, v in msg.props.items()}
        responder_name = reply["props"].get("pmqResponder")
        assert responder_name and reply["props"] == {**echoed, "pmqResponder": responder_name}, (
            f"{where}: reply properties {reply['allProps']}"
        )
        assert reply["allProps"].get("CORRELATION_ID") == r["correlationId"], f"{where}: {reply['allProps']}"
        assert r["rttMs"] < 5000, f"{where}: the reply took {r['rttMs']} ms"
    print(f"\n[java-{version}] request-reply round trips (ms): {sorted(r['rttMs'] for r in replies.values())}")


def check_unanswered(lines: list[Line], index: int, latest_ms: float) -> None:
    """The request nobody answered failed with RequestTimeoutException, not before its timeout nor after ``latest``."""
    assert not [x for x in lines if x.get("event") == "reply" and x["index"] == index], "an unheard request got a reply"
    errs = [x for x in lines if x.get("event") == "requestError" and x["index"] == index]
    assert len(errs) == 1, f"unanswered request: {errs}"
    err = errs[0]
    assert err["class"] == "org.apache.rocketmq.client.exception.RequestTimeoutException", err
    assert err["responseCode"] == REQUEST_TIMEOUT_EXCEPTION, err
    assert SILENT_TIMEOUT_MS - 50 <= err["elapsedMs"] <= latest_ms, f"timed out after {err['elapsedMs']} ms"


def test_request_reply_callback(clients: Clients, pocketmq: PocketMQ) -> None:
    """DefaultMQProducer.request(msg, RequestCallback, timeout) with five requests outstanding at once: each
    callback gets its own reply (pushed by the broker as PUSH_REPLY_MESSAGE_TO_CLIENT). A request nobody answers
    ends in onException(RequestTimeoutException)."""
    lines, responder, sent = run_requests(clients, pocketmq.namesrv_addr, "async", 5)
    check_replies(lines, responder, sent, clients.version)
    # RequestFutureHolder expires callback requests in a scan every 1 s that starts 3 s after the producer did.
    started = one_line(lines, "started")["at"]
    err = next(x for x in lines if x.get("event") == "requestError" and x["index"] == len(sent))
    sent_at = err["at"] - err["elapsedMs"]
    check_unanswered(lines, len(sent), max(SILENT_TIMEOUT_MS, started + 3000 - sent_at) + 2000)


def test_request_reply_sync(clients: Clients, pocketmq: PocketMQ) -> None:
    """DefaultMQProducer.request(msg, timeout), one request after another: each returns its own reply; a request
    nobody answers throws RequestTimeoutException after its timeout.

    rocketmq-client 5.3.1 to 5.3.3 ends a sync request as soon as the broker acknowledged the request message
    (DefaultMQProducerImpl.request: acquireCountDownLatch in the send callback; apache/rocketmq#9292, fixed after
    5.3.3 by apache/rocketmq#9608), so there every sync request throws RequestTimeoutException at once, with any
    broker. For 5.3.3 this test checks that signature (and that the responder got every request) and is reported as
    an expected failure."""
    lines, responder, sent = run_requests(clients, pocketmq.namesrv_addr, "sync", 3)
    if clients.version != "5.3.3":
        check_replies(lines, responder, sent, clients.version)
        check_unanswered(lines, len(sent), SILENT_TIMEOUT_MS + 1000)
        return
    errors = [x for x in lines if x.get("event") == "requestError"]
    assert errors, f"every 5.3.3 sync request got its reply: the client bug is gone, update this test\n{lines}"
    for err in errors:
        assert err["class"] == "org.apache.rocketmq.client.exception.RequestTimeoutException", err
        timeout_ms = SILENT_TIMEOUT_MS if err["index"] == len(sent) else REQUEST_TIMEOUT_MS
        assert err["elapsedMs"] < timeout_ms - 50, f"not the early-timeout bug: {err}"
    seen = sorted(x["request"]["body"] for x in responder.events("request"))
    assert seen == sorted(b64(m.body) for m in sent), f"the responder got {len(seen)} of {len(sent)} requests"
    pytest.xfail("rocketmq-client 5.3.3: sync request() fails once the request is sent (apache/rocketmq#9292)")


# --------------------------------------------------------------------------- pull consumers


def check_polled(p: GroupProcess, topic: str, want: list[tuple[Message, Line]], where: str) -> None:
    """Exactly ``want`` arrived, once each, intact, each queue in offset order."""
    got = messages(p)
    by_body = {b64(m.body): (m, r) for m, r in want}
    assert sorted(x["body"] for x in got) == sorted(by_body), (
        f"{where}: got {len(got)} messages ({sum(x['body'] in by_body for x in got)} expected ones), "
        f"want {len(want)}\n{p.describe()}"
    )
    for x in got:
        m, r = by_body[x["body"]]
        assert_intact(x, m, r, topic, f"{where}: {x['queueId']}/{x['queueOffset']}")
    for q in {x["queueId"] for x in got}:
        offsets = [x["queueOffset"] for x in got if x["queueId"] == q]
        assert offsets == sorted(offsets), f"{where}: queue {q} out of order: {offsets}"


def end_offsets(results: list[Line]) -> dict[str, int]:
    ends: dict[str, int] = {}
    for r in results:
        ends[str(r["queueId"])] = max(ends.get(str(r["queueId"]), 0), r["queueOffset"] + 1)
    return ends


def test_lite_pull_subscribe_offsets_resume(clients: Clients, pocketmq: PocketMQ) -> None:
    """DefaultLitePullConsumer.subscribe + poll gets every message once, in queue order; its committed offsets
    (commitSync, persisted at shutdown) let a new process of the same group poll only what was sent since."""
    ns, topic = pocketmq.namesrv_addr, clients.topic("lite")
    group = f"{topic}-g"
    first = plain_messages(f"{topic}-1", 10)
    first_results = clients.send(ns, "lite", first)
    p1 = clients.features.lite_pull(ns, topic, group, "subscribe", expect=len(first), timeout=60, linger_ms=1000)
    p1.finish(90)
    check_polled(p1, topic, list(zip(first, first_results, strict=True)), "first poller")
    committed = one(p1, "committed")
    assert committed["offsets"] == end_offsets(first_results), committed

    second = plain_messages(f"{topic}-2", 6)
    second_results = clients.send(ns, "lite", second)
    p2 = clients.features.lite_pull(ns, topic, group, "subscribe", expect=len(second), timeout=60, linger_ms=1500)
    p2.finish(90)
    check_polled(p2, topic, list(zip(second, second_results, strict=True)), "second poller (same group)")
    assert one(p2, "committed")["offsets"] == end_offsets(first_results + second_results)


def test_lite_pull_assign_seek(clients: Clients, pocketmq: PocketMQ) -> None:
    """DefaultLitePullConsumer.assign(every queue): polls every message from the first offset; then seek back:
    polling starts again exactly at the sought offsets. (The seek comes once the queues are read to their end, as a
    seek racing a pull that has just found messages may let that stale pull's messages through in the client.)"""
    ns, topic = pocketmq.namesrv_addr, clients.topic("assign")
    sent = plain_messages(topic, 10)
    results = clients.send(ns, "assign", sent)
    seek = {0: 3, 1: 1}
    want = [(m, r) for m, r in zip(sent, results, strict=True) if r["queueOffset"] >= seek[r["queueId"]]]
    assert 0 < len(want) < len(sent)
    p = clients.features.lite_pull(
        ns, topic, f"{topic}-g", "assign", expect=len(want), linger_ms=1000, seek=seek, drain=len(sent)
    )
    p.finish(90)
    drained = [x for x in p.snapshot() if x.get("event") == "drained"]
    assert sorted(x["body"] for x in drained) == sorted(b64(m.body) for m in sent), f"before the seek\n{p.describe()}"
    for q in seek:
        offsets = [x["queueOffset"] for x in drained if x["queueId"] == q]
        assert offsets == sorted(offsets) and offsets[0] == 0, f"queue {q} before the seek: {offsets}"
    for retry in p.events("seekRetry"):  # see FeatureDriver.seek: a client-side race
        print(f"\n[java-{clients.version}] seek retried: {retry['error'][:200]}")
    check_polled(p, topic, want, "assigned poller")
    first = {q: min(x["queueOffset"] for x in messages(p) if x["queueId"] == q) for q in seek}
    assert first == seek, f"polling began at {first}, sought {seek}"


def test_pull_consumer_offsets_resume(clients: Clients, pocketmq: PocketMQ) -> None:
    """DefaultMQPullConsumer.pull(queue, "*", offset, 3) per queue: FOUND pages with the exact messages and
    nextBeginOffset, then NO_NEW_MSG at the end; the offsets it commits (updateConsumeOffset, sent to the broker)
    are where a new process of the same group (fetchConsumeOffset from the broker) resumes."""
    ns, topic = pocketmq.namesrv_addr, clients.topic("pull")
    group = f"{topic}-g"
    batches = [plain_messages(f"{topic}-1", 9), plain_messages(f"{topic}-2", 5)]
    resume_at: dict[int, int] = {}
    for round_no, batch in enumerate(batches):
        results = clients.send(ns, "pull", batch)
        p = clients.features.pull(ns, topic, group, max_nums=3)
        lines = p.finish(60)
        where = f"round {round_no + 1}"
        starts = {x["queueId"]: x["offset"] for x in lines if x.get("event") == "startOffset"}
        assert set(starts) == {0, 1}, starts
        if round_no == 0:
            assert all(o in (-1, 0) for o in starts.values()), f"{where}: a new group starts at {starts}"
        else:
            assert starts == resume_at, f"{where}: started at {starts}, committed {resume_at}"
        pulls = [x for x in lines if x.get("event") == "pull"]
        got = [m for x in pulls for m in x["messages"]]
        by_body = {b64(m.body): (m, r) for m, r in zip(batch, results, strict=True)}
        assert sorted(m["body"] for m in got) == sorted(by_body), f"{where}: pulled {len(got)} of {len(batch)}"
        for m in got:
            assert_intact(m, *by_body[m["body"]], topic, f"{where}: {m['queueId']}/{m['queueOffset']}")
        for q in (0, 1):
            mine = [x for x in pulls if x["queueId"] == q]
            *found, last = mine
            assert last["status"] == "NO_NEW_MSG", f"{where} queue {q}: {last}"
            assert last["messages"] == [] and last["nextBeginOffset"] == last["offset"] == last["maxOffset"], last
            expect_offset = max(starts[q], 0)
            for x in found:
                offsets = [m["queueOffset"] for m in x["messages"]]
                assert x["status"] == "FOUND" and 1 <= len(offsets) <= 3, f"{where} queue {q}: {x}"
                assert offsets == list(range(expect_offset, expect_offset + len(offsets))), f"{where}: {x}"
                assert x["nextBeginOffset"] == offsets[-1] + 1, x
                expect_offset = x["nextBeginOffset"]
            assert expect_offset == last["maxOffset"], f"{where} queue {q}: stopped at {expect_offset}"
        committed = {x["queueId"]: x for x in lines if x.get("event") == "committed"}
        for q, x in committed.items():
            assert x["stored"] == x["offset"], f"{where}: the broker holds {x['stored']} for queue {q}, not {x}"
        resume_at = {q: x["offset"] for q, x in committed.items()}
        assert resume_at == {int(q): o for q, o in end_offsets(results).items()}, resume_at


# --------------------------------------------------------------------------- query


def test_query_by_key_and_id(clients: Clients, pocketmq: PocketMQ) -> None:
    """queryMessage(topic, key, ...) returns exactly the messages carrying that key (one key of several, a key
    shared by all, an unknown key: MQClientException NO_MESSAGE); viewMessage by offsetMsgId (VIEW_MESSAGE_BY_ID)
    and viewMessage(topic, msgId) (a unique-key query) return the exact message."""
    ns, topic = pocketmq.namesrv_addr, clients.topic("query")
    tag = f"{topic}-{int(time.time() * 1000)}"
    sent = [
        Message(
            body=f"{tag}#{i}|".encode() + bytes(range(256)),
            tags=f"q{i % 2}",
            keys=[f"{tag}-k{i % 3}", f"{tag}-all"],
            props={"i": str(i), "text": UNICODE_VALUE},
        )
        for i in range(7)
    ]
    results = clients.send(ns, "query", sent)
    keys = [f"{tag}-k1", f"{tag}-all", f"{tag}-none"]
    p = clients.features.query(
        ns,
        topic,
        f"{topic}-admin",
        keys=keys,
        offset_ids=[results[0]["offsetMsgId"], results[5]["offsetMsgId"]],
        msg_ids=[results[2]["msgId"], results[6]["msgId"]],
    )
    lines = p.finish(60)
    queries = {x["key"]: x for x in lines if x.get("event") == "query"}
    errors = {x["key"]: x for x in lines if x.get("event") == "queryError"}
    assert set(queries) == set(keys[:2]) and set(errors) == {keys[2]}, f"{queries.keys()} {errors}"
    for key in keys[:2]:
        want = {i for i, m in enumerate(sent) if key in m.keys}
        got = [int(m["props"]["i"]) for m in queries[key]["messages"]]
        assert sorted(got) == sorted(want), f"{key}: got messages {sorted(got)}, want {sorted(want)}"
        for m in queries[key]["messages"]:
            i = int(m["props"]["i"])
            assert_intact(m, sent[i], results[i], topic, f"query {key} message {i}")
    err = errors[keys[2]]
    assert err["class"] == "org.apache.rocketmq.client.exception.MQClientException", err
    assert err["responseCode"] == NO_MESSAGE, err

    views = {(x["by"], x["id"]): x for x in lines if x.get("event") == "view"}
    assert not [x for x in lines if x.get("event") == "viewError"], lines
    for by, i in [("offsetMsgId", 0), ("offsetMsgId", 5), ("msgId", 2), ("msgId", 6)]:
        x = views.get((by, results[i][by]))
        assert x is not None and x["message"] is not None, f"view by {by} of message {i}: {x}"
        assert_intact(x["message"], sent[i], results[i], topic, f"view by {by} of message {i}")


# --------------------------------------------------------------------------- no server


def test_no_server(clients: Clients) -> None:
    """A producer whose name server port is closed: send fails promptly (connection refused, well within the
    3 s send timeout) with the client's error naming the failed connection, and the JVM ends by itself after
    shutdown (no client thread keeps it alive). Both versions raise IllegalStateException wrapping
    RemotingConnectException here (MQClientInstance.updateTopicRouteInfoFromNameServer), not MQClientException."""
    port = harness.free_port()  # bound, then released: nothing listens there
    p = clients.features.no_server(f"127.0.0.1:{port}", f"{clients.prefix}-nowhere", f"{clients.prefix}-lost", 3000)
    p.wait_event("done", 30)
    shut_down = time.monotonic()
    lines = p.finish(30)
    exited_after = time.monotonic() - shut_down
    assert exited_after < 10, f"the JVM lingered {exited_after:.1f} s after producer.shutdown()"
    assert not [x for x in lines if x.get("event") == "sent"], "a send without a server succeeded"
    err = one(p, "sendError")
    assert "RemotingConnectException" in err["error"], err
    assert err["elapsedMs"] < 3000, f"the failed send took {err['elapsedMs']} ms"
    assert lines[-1].get("event") == "done", lines[-1]
    print(
        f"\n[java-{clients.version}] send without a server: {err['class']} after {err['elapsedMs']} ms; "
        f"JVM exited {exited_after:.1f} s after shutdown"
    )

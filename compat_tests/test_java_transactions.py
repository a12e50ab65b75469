"""Transactional messages with the stock Java client (rocketmq-client 4.9.8 and 5.3.3) against pocketmq.

A ``TransactionMQProducer`` with a ``TransactionListener`` (compat_tests/java TxDriver, see java_tx.py) follows a plan
per message: what the local transaction returns (COMMIT_MESSAGE / ROLLBACK_MESSAGE / UNKNOW, or it hangs) and what
``checkLocalTransaction`` answers to each check. It reports every local execution and every check it receives
(transaction id, the message's properties including TRANSACTION_CHECK_TIMES, the time); a push consumer
(java_driver's ``Driver consume``) reports what it receives.

The broker runs with ``transactionTimeOut=2000``, ``transactionCheckInterval=1000`` and ``transactionCheckMax=5`` (a
broker.conf), so checks come within seconds. Every test ends with the **oracle**: each message a consumer ever saw
was committed (by its local transaction or by a check), and only once; nothing rolled back or still unknown.

Timing is measured with this machine's wall clock, shared by the JVMs and the server: ``sentAt`` is taken before
``sendMessageInTransaction``, ``at`` when a local transaction or a check callback runs. Run with ``-s`` to see the
measured check timings.
Run: ``pytest compat_tests/test_java_transactions.py -s`` (needs java + mvn; skipped without them unless CI is set).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import PocketMQ
from compat_tests.java_driver import CLIENT_VERSIONS, Consumer, JavaClient
from compat_tests.java_tx import (
    BLOCK,
    COMMIT,
    ROLLBACK,
    UNKNOW,
    Decisions,
    TxMessage,
    TxProducer,
    b64,
    check_timing,
    first_key,
    oracle,
    start_tx_producer,
    write_broker_conf,
)

pytestmark = [
    pytest.mark.compat,
    pytest.mark.slow,
]

TIMEOUT_MS = 2_000  # transactionTimeOut: a half message is first checked this long after it was stored
INTERVAL_MS = 1_000  # transactionCheckInterval: then again this often
CHECK_MAX = 5  # transactionCheckMax: then it is discarded
CLOCK_SLACK_MS = 50  # ms rounding and clock reads in different processes
# A check reaches the listener soon after it is due: the broker's checker sleeps until the next due time, the
# client runs checkLocalTransaction on its check thread pool. Generous for two busy cores running several JVMs.
CHECK_LATE_BOUND_MS = 1_500
HEARTBEAT_MS = 1_000  # producers' heartbeatBrokerInterval: how soon a (re)started broker knows a producer again
SLOW_LOCAL_MS = TIMEOUT_MS + 1_500  # a local transaction that outlives transactionTimeOut
IMMUNITY_S = 4  # CHECK_IMMUNITY_TIME_IN_SECONDS on one message: its first check waits this long instead
UNICODE_VALUE = "ünïcødé ✓ 日本語 a=b;c:d"

TIMINGS: list[str] = []  # measured check timings, printed at the end of the module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketMQ]:
    """One pocketmq for the module, with transaction checks within seconds."""
    root = Path(tmp_path_factory.mktemp("pocketmq-tx"))
    conf = write_broker_conf(root / "broker.conf", TIMEOUT_MS, INTERVAL_MS, CHECK_MAX)
    srv = PocketMQ(data_dir=root / "data", extra_args=["--config", str(conf)])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        if TIMINGS:
            print("\n\nmeasured transaction check timings "
                  f"(configured: transactionTimeOut={TIMEOUT_MS} ms, transactionCheckInterval={INTERVAL_MS} ms, "
                  f"transactionCheckMax={CHECK_MAX}):")  # fmt: skip
            for line in TIMINGS:
                print(f"  {line}")


@pytest.fixture
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
    base = request.node.originalname.removeprefix("test_").replace("_", "-")
    return f"jt{client.version.replace('.', '')}-{base}-{os.getpid()}"


def versions() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("client", CLIENT_VERSIONS, indirect=True, ids=[f"java-{v}" for v in CLIENT_VERSIONS])


def by_version() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("version", CLIENT_VERSIONS, ids=[f"java-{v}" for v in CLIENT_VERSIONS])


# --------------------------------------------------------------------------- helpers


def tx(prefix: str, name: str, local: str, checks: list[str] | None = None, **kw: Any) -> TxMessage:
    """A message with a unique body (every byte value) and key, a shared second key, tags and user properties."""
    key = f"{prefix}-{name}"
    return TxMessage(
        body=f"{key}|".encode() + bytes(range(256)),
        key=key,
        local=local,
        checks=checks or [],
        tags=kw.pop("tags", f"tag-{name.split('-')[0]}"),
        more_keys=[f"{prefix}-shared"],
        props={"pmqPlan": name, "pmqText": UNICODE_VALUE, "pmq-prefix": prefix},
        **kw,
    )


def server_log(server: PocketMQ, limit: int = 4000) -> str:
    if server.log_path is None:
        return ""
    try:
        return f"server log ({server.log_path}):\n" + server.log_path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def stop_consumer(consumer: Consumer) -> list[dict[str, Any]]:
    if consumer.proc.poll() is None:
        consumer.proc.terminate()
    consumer.join(30)
    return consumer.messages


def wait_for(predicate: Any, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


def received_keys(consumer: Consumer) -> set[str]:
    return {k for k in (first_key(m) for m in consumer.messages) if k}


def assert_intact(
    msg: TxMessage, sent: dict[str, Any], copies: list[dict[str, Any]], topic: str, server: PocketMQ
) -> None:
    """Delivered exactly once, as sent: body, topic, tags, keys, user properties, msgId, queue; no half-message
    properties left (REAL_TOPIC, REAL_QID, TRAN_MSG) and the commit type in sysFlag."""
    expected_props = dict(msg.props)
    if msg.immunity_seconds is not None:
        # Kept on the committed message (as Apache does); not in the client's MessageConst.STRING_HASH_SET, so the
        # consumer driver lists it with the user properties.
        expected_props["CHECK_IMMUNITY_TIME_IN_SECONDS"] = str(msg.immunity_seconds)
    where = f"{msg.key} (local {msg.local}, checks {msg.checks})"
    assert len(copies) == 1, f"{where} delivered {len(copies)} times"
    got = copies[0]
    props = got["allProps"]
    assert got["body"] == b64(msg.body), where
    assert got["topic"] == topic, where
    assert got["tags"] == msg.tags, where
    assert got["keys"] == msg.keys, where
    assert got["props"] == expected_props, f"{where}: user properties differ; all properties {props}"
    assert got["msgId"] == sent["msgId"] == sent["transactionId"], f"{where}: msgId differs from the send: {sent}"
    assert got["queueId"] == sent["queueId"], f"{where}: delivered to queue {got['queueId']}, sent to {sent}"
    assert got["storeHost"] == server.broker_addr, where
    assert got["reconsumeTimes"] == 0, where
    leftovers = {"REAL_TOPIC", "REAL_QID", "TRAN_MSG"} & set(props)
    assert not leftovers, f"{where}: half-message properties on the delivered message: {props}"
    assert got["sysFlag"] & 0xC == 0x8, f"{where}: sysFlag {got['sysFlag']:#x} is not TRANSACTION_COMMIT_TYPE"


def assert_check_message(check: dict[str, Any], msg: TxMessage, sent: dict[str, Any], topic: str, group: str) -> None:
    """A check carries the half message as the producer sent it: real topic and queue, body, keys, user
    properties, PGROUP, the transaction id, and TRANSACTION_CHECK_TIMES."""
    where = f"check {check['n']} of {msg.key}"
    props = check["allProps"]
    assert check["transactionId"] == sent["transactionId"], f"{where}: transaction id {check}"
    assert check["topic"] == topic and check["queueId"] == sent["queueId"], f"{where}: {check}"
    assert check["body"] == b64(msg.body), where
    assert props.get("KEYS") == " ".join(msg.keys), f"{where}: {props}"
    assert props.get("PGROUP") == group, f"{where}: {props}"
    assert props.get("UNIQ_KEY") == sent["transactionId"], f"{where}: {props}"
    assert {k: props.get(k) for k in msg.props} == msg.props, f"{where}: user properties {props}"
    assert check["checkTimes"] is not None and int(check["checkTimes"]) >= 1, f"{where}: {props}"


def report(label: str, text: str) -> None:
    line = f"[{label}] {text}"
    TIMINGS.append(line)
    print(f"\n{line}")


# --------------------------------------------------------------------------- scenario 1-3: one run per version


@dataclass
class BasicRun:
    version: str
    topic: str
    group: str
    messages: dict[str, TxMessage]  # plan name -> message
    producer: TxProducer
    consumer: Consumer
    received: list[dict[str, Any]] = field(default_factory=list)
    consumer_stopped_at: int = 0
    decisions: Decisions = field(default_factory=Decisions)

    def msg(self, name: str) -> TxMessage:
        return self.messages[name]

    def sent(self, name: str) -> dict[str, Any]:
        return next(x for x in self.producer.events("sent") if x["key"] == self.msg(name).key)

    def local(self, name: str) -> dict[str, Any]:
        return next(x for x in self.producer.events("local") if x["key"] == self.msg(name).key)

    def checks(self, name: str) -> list[dict[str, Any]]:
        return self.decisions.checks.get(self.msg(name).key, [])

    def copies(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.received if first_key(m) == self.msg(name).key]

    def describe(self) -> str:
        return f"{self.producer.describe()}\n{self.consumer.describe()}"


def basic_plan(prefix: str) -> dict[str, TxMessage]:
    plans = {
        "commit-0": (COMMIT, []),
        "commit-1": (COMMIT, []),
        "commit-2": (COMMIT, []),
        "rollback-0": (ROLLBACK, []),
        "rollback-1": (ROLLBACK, []),
        "unknown-commit-0": (UNKNOW, [COMMIT]),
        "unknown-commit-1": (UNKNOW, [COMMIT]),
        "unknown3-commit": (UNKNOW, [UNKNOW, UNKNOW, COMMIT]),  # repeated checks: their interval
        "unknown-rollback": (UNKNOW, [ROLLBACK]),
        "unknown-forever": (UNKNOW, [UNKNOW]),  # checked transactionCheckMax times, then discarded
    }
    out = {name: tx(prefix, name, local, checks) for name, (local, checks) in plans.items()}
    out["commit-notag"] = tx(prefix, "commit-notag", COMMIT, tags=None)
    out["immunity-commit"] = tx(prefix, "immunity-commit", UNKNOW, [COMMIT], immunity_seconds=IMMUNITY_S)
    # Last (sends are one after another): the local transaction outlives transactionTimeOut, the check commits it
    # meanwhile, then the local COMMIT arrives as well.
    out["slow-commit"] = tx(prefix, "slow-commit", COMMIT, [COMMIT], local_delay_ms=SLOW_LOCAL_MS)
    return out


def committed_names(plan: dict[str, TxMessage]) -> list[str]:
    return [n for n, m in plan.items() if m.local == COMMIT or (m.local != ROLLBACK and COMMIT in m.checks)]


@pytest.fixture(scope="module")
def basic(
    java_builds: dict[str, tuple[str, str]], server: PocketMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, BasicRun]]:
    """Scenarios 1-3 for both client versions at once (one producer and one consumer JVM each): commits, rollbacks,
    UNKNOW resolved by checks. Runs until every planned outcome happened and the last rollback is more than
    transactionTimeOut + transactionCheckMax intervals old, so a wrongly delivered or re-checked message shows."""
    work = Path(tmp_path_factory.mktemp("java-tx-basic"))
    clients = {
        v: JavaClient(java=java_builds[v][0], version=v, classpath=java_builds[v][1], work_dir=work / v)
        for v in CLIENT_VERSIONS
    }
    runs: dict[str, BasicRun] = {}
    try:
        started = {}
        for v, c in clients.items():
            prefix = f"jt{v.replace('.', '')}-basic-{os.getpid()}"
            plan = basic_plan(prefix)
            started[v] = (
                prefix,
                plan,
                start_tx_producer(c, server.namesrv_addr, f"{prefix}-t", f"{prefix}-pg", plan.values()),
            )
        for v, (prefix, plan, producer) in started.items():
            producer.wait_sent(timeout=60)
            # The first send auto-created the topic: the consumer finds its route at once (from the first offset).
            consumer = clients[v].start_consume(
                server.namesrv_addr, f"{prefix}-t", f"{prefix}-cg", expect=10**6, timeout=300
            )
            runs[v] = BasicRun(v, f"{prefix}-t", f"{prefix}-pg", plan, producer, consumer)
        last_sent = max(x["sentAt"] for run in runs.values() for x in run.producer.events("sent"))
        # Long enough for every check transactionCheckMax allows, one more interval (no 6th check), and for the
        # rollbacks more than two check intervals past their first possible check.
        quiet_until = last_sent + TIMEOUT_MS + CHECK_MAX * INTERVAL_MS + 2 * INTERVAL_MS

        def settled() -> bool:
            if time.time() * 1000 < quiet_until:
                return False
            return all(
                {run.msg(n).key for n in committed_names(run.messages)} <= received_keys(run.consumer)
                for run in runs.values()
            )

        wait_for(settled, timeout=(quiet_until / 1000 - time.time()) + 30)
        for run in runs.values():
            run.received = stop_consumer(run.consumer)
            run.consumer_stopped_at = int(time.time() * 1000)
            run.producer.stop()
            run.decisions = Decisions.of([run.producer])
        yield runs
    finally:
        for c in clients.values():
            c.close()


@by_version()
def test_commit_is_consumed_exactly_once(basic: dict[str, BasicRun], version: str, server: PocketMQ) -> None:
    """Local transaction COMMIT_MESSAGE: consumed exactly once, intact (body, keys, tags, user properties, msgId,
    queue); never checked."""
    run = basic[version]
    for name in ("commit-0", "commit-1", "commit-2", "commit-notag"):
        sent = run.sent(name)
        assert sent["status"] == "SEND_OK" and sent["localState"] == COMMIT, sent
        copies = run.copies(name)
        assert copies, f"{name} never consumed\n{run.describe()}\n{server_log(server)}"
        assert_intact(run.msg(name), sent, copies, run.topic, server)
        assert copies[0]["receivedAt"] >= run.local(name)["at"] - CLOCK_SLACK_MS
        assert not run.checks(name), f"{name} was committed at once but checked: {run.checks(name)}"
    oracle(run.decisions, run.received)


@by_version()
def test_rollback_is_never_consumed(basic: dict[str, BasicRun], version: str, server: PocketMQ) -> None:
    """Local transaction ROLLBACK_MESSAGE: never consumed and never checked, watched for more than
    transactionTimeOut + two check intervals (in fact + transactionCheckMax intervals) after the rollback."""
    run = basic[version]
    for name in ("rollback-0", "rollback-1"):
        sent = run.sent(name)
        assert sent["status"] == "SEND_OK" and sent["localState"] == ROLLBACK, sent
        watched = run.consumer_stopped_at - sent["sentAt"]
        assert watched >= TIMEOUT_MS + 2 * INTERVAL_MS, f"only watched {watched} ms after the rollback"
        assert not run.copies(name), f"rolled-back {name} was consumed: {run.copies(name)}\n{server_log(server)}"
        assert not run.checks(name), f"rolled-back {name} was checked: {run.checks(name)}"
    oracle(run.decisions, run.received)


@by_version()
def test_unknown_then_check_commits(basic: dict[str, BasicRun], version: str, server: PocketMQ) -> None:
    """Local transaction UNKNOW, the check answers COMMIT_MESSAGE: consumed exactly once, after the check. The
    first check comes no earlier than transactionTimeOut after the send and within a bound after; repeated checks
    (UNKNOW, UNKNOW, COMMIT) come every transactionCheckInterval with TRANSACTION_CHECK_TIMES 1, 2, 3."""
    run = basic[version]
    first_delays, intervals = [], []
    for name in ("unknown-commit-0", "unknown-commit-1", "unknown3-commit"):
        msg, sent = run.msg(name), run.sent(name)
        assert sent["status"] == "SEND_OK" and sent["localState"] == UNKNOW, sent
        checks = run.checks(name)
        expected_checks = len(msg.checks)
        assert len(checks) == expected_checks, (
            f"{name}: {len(checks)} checks, expected {expected_checks} (none after the COMMIT answer): "
            f"{[(c['n'], c['answer'], c['at']) for c in checks]}\n{server_log(server)}"
        )
        for check in checks:
            assert_check_message(check, msg, sent, run.topic, run.group)
        assert [c["checkTimes"] for c in checks] == [str(i + 1) for i in range(expected_checks)], checks
        timing = check_timing(run.decisions, msg.key, sent["sentAt"])
        first = timing["first_after_ms"]
        since_local = checks[0]["at"] - run.local(name)["at"]  # the local transaction runs right after the store
        assert first >= TIMEOUT_MS - CLOCK_SLACK_MS, f"{name}: first check {first} ms after the send"
        assert since_local <= TIMEOUT_MS + INTERVAL_MS + CHECK_LATE_BOUND_MS, (
            f"{name}: first check {since_local} ms after the half message was stored\n{server_log(server)}"
        )
        first_delays.append(first)
        for gap in timing["intervals_ms"]:
            assert INTERVAL_MS - 150 <= gap <= INTERVAL_MS + CHECK_LATE_BOUND_MS, f"{name}: checks {gap} ms apart"
        intervals += timing["intervals_ms"]
        copies = run.copies(name)
        assert copies, f"{name} committed by its check but never consumed\n{run.describe()}\n{server_log(server)}"
        assert_intact(msg, sent, copies, run.topic, server)
        assert copies[0]["receivedAt"] >= checks[-1]["at"] - CLOCK_SLACK_MS, f"{name} consumed before the commit"
    report(
        f"{version} UNKNOW -> check",
        f"first check {first_delays} ms after the send (configured {TIMEOUT_MS}); "
        f"repeated checks {intervals} ms apart (configured {INTERVAL_MS})",
    )
    oracle(run.decisions, run.received)


@by_version()
def test_check_rollback_and_check_max(basic: dict[str, BasicRun], version: str, server: PocketMQ) -> None:
    """UNKNOW answered by a ROLLBACK check: never consumed, never checked again. UNKNOW forever: checked exactly
    transactionCheckMax times (TRANSACTION_CHECK_TIMES 1..max), every transactionCheckInterval, never consumed."""
    run = basic[version]
    msg, sent = run.msg("unknown-rollback"), run.sent("unknown-rollback")
    checks = run.checks("unknown-rollback")
    assert [c["answer"] for c in checks] == [ROLLBACK], f"unknown-rollback checks {checks}\n{server_log(server)}"
    assert_check_message(checks[0], msg, sent, run.topic, run.group)
    assert not run.copies("unknown-rollback"), f"rolled back by a check but consumed: {run.copies('unknown-rollback')}"

    msg, sent = run.msg("unknown-forever"), run.sent("unknown-forever")
    checks = run.checks("unknown-forever")
    assert [c["checkTimes"] for c in checks] == [str(i + 1) for i in range(CHECK_MAX)], (
        f"unknown-forever: TRANSACTION_CHECK_TIMES {[c['checkTimes'] for c in checks]}, expected exactly "
        f"{CHECK_MAX} checks\n{server_log(server)}"
    )
    watched = run.consumer_stopped_at - checks[-1]["at"]
    assert watched >= INTERVAL_MS, f"only watched {watched} ms after the last check for a further one"
    timing = check_timing(run.decisions, msg.key, sent["sentAt"])
    for gap in timing["intervals_ms"]:
        assert INTERVAL_MS - 150 <= gap <= INTERVAL_MS + CHECK_LATE_BOUND_MS, f"unknown-forever: checks {gap} ms apart"
    assert not run.copies("unknown-forever"), "a transaction never committed was consumed"
    report(
        f"{version} UNKNOW forever",
        f"{timing['checks']} checks (configured max {CHECK_MAX}), first {timing['first_after_ms']} ms after the "
        f"send, then {timing['intervals_ms']} ms apart",
    )
    oracle(run.decisions, run.received)


@by_version()
def test_check_immunity_time(basic: dict[str, BasicRun], version: str, server: PocketMQ) -> None:
    """CHECK_IMMUNITY_TIME_IN_SECONDS on a message postpones its first check to that many seconds instead of
    transactionTimeOut; a COMMIT answer then delivers it once."""
    run = basic[version]
    msg, sent = run.msg("immunity-commit"), run.sent("immunity-commit")
    checks = run.checks("immunity-commit")
    assert len(checks) == 1 and checks[0]["answer"] == COMMIT, f"immunity-commit checks {checks}"
    assert_check_message(checks[0], msg, sent, run.topic, run.group)
    first = checks[0]["at"] - sent["sentAt"]
    since_local = checks[0]["at"] - run.local("immunity-commit")["at"]
    assert first >= IMMUNITY_S * 1000 - CLOCK_SLACK_MS, f"first check {first} ms after the send"
    assert since_local <= IMMUNITY_S * 1000 + CHECK_LATE_BOUND_MS, f"first check {since_local} ms after the store"
    assert_intact(msg, sent, run.copies("immunity-commit"), run.topic, server)
    report(f"{version} CHECK_IMMUNITY_TIME_IN_SECONDS={IMMUNITY_S}", f"first check {first} ms after the send")
    oracle(run.decisions, run.received)


@by_version()
def test_local_commit_after_check_commit(basic: dict[str, BasicRun], version: str, server: PocketMQ) -> None:
    """A local transaction that takes longer than transactionTimeOut: the check comes while it runs and answers
    COMMIT_MESSAGE, then the local transaction returns COMMIT_MESSAGE too (a second END_TRANSACTION COMMIT for the
    same half message). Consumed exactly once (Apache can deliver such a message twice, docs/compatibility.md)."""
    run = basic[version]
    msg, sent = run.msg("slow-commit"), run.sent("slow-commit")
    assert sent["status"] == "SEND_OK" and sent["localState"] == COMMIT, sent
    checks = run.checks("slow-commit")
    assert [c["answer"] for c in checks] == [COMMIT], f"slow-commit checks {checks}\n{server_log(server)}"
    assert_check_message(checks[0], msg, sent, run.topic, run.group)
    local_done = next(x for x in run.producer.events("localDone") if x["key"] == msg.key)
    assert checks[0]["at"] < local_done["at"], "the check did not come while the local transaction ran"
    assert_intact(msg, sent, run.copies("slow-commit"), run.topic, server)
    oracle(run.decisions, run.received)


# --------------------------------------------------------------------------- scenario 4: producer killed


@versions()
def test_producer_killed_new_producer_answers_check(client: JavaClient, server: PocketMQ, names: str) -> None:
    """A producer is killed (SIGKILL) while two local transactions hang right after their half messages were
    stored. A new producer process of the same group answers the checks: the one it commits is consumed once, the
    one it rolls back never.

    A third message was committed by its local transaction just before the kill. Its END_TRANSACTION is a oneway
    request that the client writes asynchronously, so it may die with the process; the new producer's check then
    answers COMMIT (the local transaction did commit). Either way it is consumed exactly once."""
    topic, group = f"{names}-t", f"{names}-pg"
    ns = server.namesrv_addr
    plan = [
        tx(names, "commit", COMMIT, [COMMIT]),
        tx(names, "hang-commit", BLOCK, [COMMIT]),
        tx(names, "hang-rollback", BLOCK, [ROLLBACK]),
    ]
    by_name = {m.key.removeprefix(f"{names}-"): m for m in plan}
    first = start_tx_producer(client, ns, topic, group, plan, parallel=True)
    assert first.wait_event("local", timeout=60, count=3), f"local transactions did not run\n{first.describe()}"
    assert first.wait_event("sent", timeout=10, key=by_name["commit"].key), first.describe()
    killed_at = int(time.time() * 1000)
    first.kill_hard()
    local = {x["key"]: x for x in first.events("local")}
    assert not first.events("check"), "checked before transactionTimeOut"

    consumer = client.start_consume(ns, topic, f"{names}-cg", expect=10**6, timeout=300)
    # The new process sends a message of its own, as a restarted application would: a 5.x producer that has sent
    # nothing knows no broker, so it would send no heartbeat and never be checked (the broker needs a registered
    # producer of the group to check).
    after = tx(names, "after-restart", COMMIT)
    second = start_tx_producer(client, ns, topic, group, [replace(m, check_only=True) for m in plan] + [after])
    second.wait_sent(timeout=60)
    hung = [by_name["hang-commit"].key, by_name["hang-rollback"].key]
    resolved = wait_for(lambda: set(hung) <= {c["key"] for c in second.events("check")}, timeout=30)
    assert resolved, f"the new producer was not checked for {hung}\n{second.describe()}\n{server_log(server)}"
    wanted = {by_name["commit"].key, by_name["hang-commit"].key, after.key}
    got_all = wait_for(lambda: wanted <= received_keys(consumer), timeout=20)
    time.sleep(2 * INTERVAL_MS / 1000)  # a rolled-back one, a second copy or a further check would show by now
    received = stop_consumer(consumer)
    second.stop()
    decisions = Decisions.of([first, second])
    assert got_all, f"consumed {sorted(received_keys(consumer))}, wanted {sorted(wanted)}\n{consumer.describe()}"

    checks = {c["key"]: c for c in second.events("check")}
    for name in ("commit", "hang-commit", "hang-rollback"):
        msg = by_name[name]
        copies = [m for m in received if first_key(m) == msg.key]
        mine = [c for c in second.events("check") if c["key"] == msg.key]
        assert len(mine) <= 1, f"{name} checked again after the answer: {mine}"
        if mine:
            # The first process may never have returned from sendMessageInTransaction: the transaction id is the
            # one its local transaction saw.
            check = mine[0]
            assert check["transactionId"] == local[msg.key]["transactionId"], (check, local[msg.key])
            sent = {"transactionId": local[msg.key]["transactionId"], "queueId": check["queueId"]}
            assert_check_message(check, msg, sent, topic, group)
            assert check["at"] - local[msg.key]["at"] >= TIMEOUT_MS - CLOCK_SLACK_MS, f"{name} checked early: {check}"
        if name == "hang-rollback":
            assert not copies, f"{name} was rolled back by the check but consumed"
            continue
        assert len(copies) == 1, f"{name} delivered {len(copies)} times"
        got = copies[0]
        assert got["body"] == b64(msg.body) and got["props"] == msg.props and got["keys"] == msg.keys, got
        assert got["msgId"] == local[msg.key]["transactionId"], got
    sent_after = second.events("sent")[0]
    assert_intact(after, sent_after, [m for m in received if first_key(m) == after.key], topic, server)

    delays = {n: checks[by_name[n].key]["at"] - local[by_name[n].key]["at"] for n in ("hang-commit", "hang-rollback")}
    since_send = {n: checks[by_name[n].key]["at"] - sent_after["at"] for n in delays}
    end_lost = by_name["commit"].key in checks
    report(
        f"{client.version} producer killed",
        f"checks reached the new producer {delays} ms after the half messages were stored (configured timeout "
        f"{TIMEOUT_MS}; killed {killed_at - max(x['at'] for x in local.values())} ms after the last one), "
        f"{since_send} ms after its first send registered it; the commit just before the kill "
        + ("was lost with the process and committed by the new producer's check" if end_lost else "reached the broker"),
    )
    oracle(decisions, received)


# --------------------------------------------------------------------------- scenario 5: broker killed


@versions()
def test_broker_killed_with_pending_half_messages(client: JavaClient, server: PocketMQ, names: str) -> None:
    """Half messages pending (local UNKNOW) when the broker is killed (kill -9); after the restart the checks resolve
    them: the ones the check commits are consumed exactly once, the ones it rolls back never. A message committed
    before the kill is consumed exactly once too."""
    topic, group = f"{names}-t", f"{names}-pg"
    ns = server.namesrv_addr
    plan = [tx(names, "commit-before", COMMIT)]
    plan += [tx(names, f"check-commit-{i}", UNKNOW, [COMMIT]) for i in range(3)]
    plan += [tx(names, f"check-rollback-{i}", UNKNOW, [ROLLBACK]) for i in range(3)]
    producer = start_tx_producer(client, ns, topic, group, plan, heartbeat_ms=HEARTBEAT_MS)
    producer.wait_sent(timeout=60)
    first_store = min(x["at"] for x in producer.events("local"))
    killed_at = int(time.time() * 1000)
    server.stop(kill=True)
    assert killed_at < first_store + TIMEOUT_MS - 200, f"too slow to kill the broker ({killed_at - first_store} ms)"
    assert not producer.events("check"), "checked before the broker was killed"
    # Down until every half message is overdue: the restarted broker has to check them at once.
    time.sleep(max(0.0, (first_store + TIMEOUT_MS + 500) / 1000 - time.time()))
    server.start()
    restarted_at = int(time.time() * 1000)

    pending = [m.key for m in plan if m.local == UNKNOW]
    all_checked = wait_for(lambda: set(pending) <= {c["key"] for c in producer.events("check")}, timeout=30)
    assert all_checked, (
        f"after the restart only {sorted({c['key'] for c in producer.events('check')})} of {pending} were checked\n"
        f"{producer.describe()}\n{server_log(server)}"
    )
    consumer = client.start_consume(ns, topic, f"{names}-cg", expect=10**6, timeout=300)
    committed = [m for m in plan if m.local == COMMIT or COMMIT in m.checks]
    got_all = wait_for(lambda: {m.key for m in committed} <= received_keys(consumer), timeout=30)
    time.sleep(2 * INTERVAL_MS / 1000)
    received = stop_consumer(consumer)
    producer.stop()
    assert got_all, (
        f"committed {sorted(m.key for m in committed)}, consumed {sorted(received_keys(consumer))}\n"
        f"{consumer.describe()}\n{server_log(server)}"
    )
    decisions = Decisions.of([producer])
    sent = {x["key"]: x for x in producer.events("sent")}
    for msg in plan:
        copies = [m for m in received if first_key(m) == msg.key]
        checks = decisions.checks.get(msg.key, [])
        if msg.local == COMMIT:
            # Its END_TRANSACTION went over the connection the later sends used, and the broker handles a connection's
            # requests in order, so it was stored before those sends were answered, well before the kill.
            assert not checks, f"{msg.key} committed before the kill but checked after the restart: {checks}"
        else:
            assert len(checks) == 1, f"{msg.key}: {len(checks)} checks after the restart (answered the first)"
            assert_check_message(checks[0], msg, sent[msg.key], topic, group)
            assert checks[0]["at"] >= restarted_at - CLOCK_SLACK_MS
            assert checks[0]["checkTimes"] == "1", f"{msg.key}: {checks[0]}"
        if msg in committed:
            assert_intact(msg, sent[msg.key], copies, topic, server)
        else:
            assert not copies, f"{msg.key} was rolled back by its check after the restart but consumed"
    after_restart = sorted(c["at"] - restarted_at for key in pending for c in decisions.checks[key])
    # Overdue at the restart: checked as soon as the producer is registered again (its next heartbeat).
    assert max(after_restart) <= HEARTBEAT_MS + INTERVAL_MS + CHECK_LATE_BOUND_MS, (
        f"checks came {after_restart} ms after the restart\n{server_log(server)}"
    )
    report(
        f"{client.version} broker killed",
        f"overdue checks came {after_restart} ms after the restart (producer heartbeat every {HEARTBEAT_MS} ms; "
        f"half messages {restarted_at - first_store} ms old at the restart, transactionTimeOut={TIMEOUT_MS})",
    )
    oracle(decisions, received)

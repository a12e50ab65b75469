"""Transactional messages with the stock Go client (github.com/apache/rocketmq-client-go/v2) against pocketmq.

A dedicated pocketmq runs with ``transactionTimeOut=2000`` and ``transactionCheckInterval=1000`` (broker.conf), so
back-checks come within seconds. Each test drives real Go processes (compat_tests/go, see go_driver.py): a
transaction producer whose local transaction and check answers follow a plan, and a push consumer (clustering).

The oracle, for every test: the consumer never sees a message that was not committed (nor before it was), and sees
every committed one exactly once, intact (body, tags, keys, user properties, id), with no transaction-internal
properties; rolled-back and locally resolved messages are never checked; nothing stays pending in the store.
Run: ``pytest compat_tests/test_go_transactions.py -s`` (needs go; skipped without it unless ``CI`` is set;
``-s`` shows the build time and check timings).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.go_driver import DriverProcess, GoClient, PlannedTx, body_of
from compat_tests.harness import PocketMQ
from store.inspect import pending_half_messages

pytestmark = [pytest.mark.compat, pytest.mark.slow]

TIMEOUT_MS = 2000  # transactionTimeOut: the first check of a pending half message
INTERVAL_MS = 1000  # transactionCheckInterval: the checks after that
BROKER_CONF = f"""\
brokerClusterName=DefaultCluster
brokerName=broker-a
transactionTimeOut={TIMEOUT_MS}
transactionCheckInterval={INTERVAL_MS}
"""
TEXT = "ünïcødé ✓ 日本語 a=b;c:d"
TX_INTERNAL = {"TRAN_MSG", "REAL_TOPIC", "REAL_QID", "TRANSACTION_CHECK_TIMES", "__transactionId__"}
TRANSACTION_COMMIT_TYPE = 0x8
TRANSACTION_TYPE_MASK = 0xC


@pytest.fixture(scope="module")
def txserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketMQ]:
    """A pocketmq of its own, checking pending transactions after 2 s and every 1 s after that."""
    base = Path(tmp_path_factory.mktemp("pocketmq-tx"))
    conf = base / "broker.conf"
    conf.write_text(BROKER_CONF)
    server = PocketMQ(data_dir=base / "data", extra_args=["--config", str(conf)])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def names(request: pytest.FixtureRequest) -> str:
    base = request.node.originalname.removeprefix("test_").replace("_", "-")
    return f"go-tx-{base}-{os.getpid()}"


# --------------------------------------------------------------------------- helpers


def msg(name: str, local: str, checks: list[str] | None = None, **kw: Any) -> PlannedTx:
    return PlannedTx(
        name=name,
        body=f"{name}|{TEXT}",
        local=local,
        checks=checks or [],
        tags=f"tag-{local}",
        keys=[f"{name}-key", "shared-key"],
        props={"pmqText": TEXT, "pmqPlan": local},
        **kw,
    )


def of(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [x for x in lines if x.get("event") == kind]


def wait_sent(proc: DriverProcess, names: list[str], timeout: float = 30) -> None:
    proc.wait_for(lambda ls: {x.get("name") for x in of(ls, "sent")} >= set(names), timeout, f"send results {names}")


def assert_sent_ok(lines: list[dict[str, Any]], plan: list[PlannedTx]) -> dict[str, dict[str, Any]]:
    sent = {x["name"]: x for x in of(lines, "sent")}
    assert not of(lines, "send-error"), of(lines, "send-error")
    for p in plan:
        if not p.send:
            continue
        r = sent.get(p.name)
        assert r is not None, f"{p.name}: no send result"
        assert r["ok"] and r["status"] == 0, f"{p.name}: {r}"
        assert r["state"] == p.local, f"{p.name}: the client reports local state {r['state']}, planned {p.local}"
        assert r["msgId"] and r["transactionId"] == r["msgId"], r
        assert len(r["offsetMsgId"]) == 32, f"{p.name}: offsetMsgId {r['offsetMsgId']!r}"
        assert r["queue"]["brokerName"] == "broker-a" and r["queue"]["queueId"] >= 0, r
    return sent


def outcome(producers: list[list[dict[str, Any]]]) -> tuple[dict[str, int], set[str], dict[str, list[dict]]]:
    """From the producers' output: name -> when it was committed (ms), names rolled back, checks per name."""
    committed: dict[str, int] = {}
    rolled_back: set[str] = set()
    checks: dict[str, list[dict[str, Any]]] = {}
    for lines in producers:
        for x in of(lines, "local"):
            if x["state"] == "commit":
                committed[x["name"]] = x["time"]
            elif x["state"] == "rollback":
                rolled_back.add(x["name"])
        for x in of(lines, "check"):
            checks.setdefault(x["name"], []).append(x)
            if x["answer"] == "commit":
                committed.setdefault(x["name"], x["time"])
            elif x["answer"] == "rollback":
                rolled_back.add(x["name"])
    assert not committed.keys() & rolled_back, f"both committed and rolled back: {committed.keys() & rolled_back}"
    return committed, rolled_back, checks


def assert_oracle(
    producers: list[list[dict[str, Any]]],
    consumed: list[dict[str, Any]],
    plan: dict[str, PlannedTx],
    topic: str,
    transaction_ids: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """Committed messages arrive exactly once, intact and not before their commit; nothing else arrives."""
    committed, _, _ = outcome(producers)
    names = [m["name"] for m in consumed]
    unexpected = [n for n in names if n not in committed]
    assert not unexpected, f"consumed messages that were never committed: {unexpected}"
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"committed messages delivered more than once: {dupes}"
    missing = set(committed) - set(names)
    assert not missing, f"committed messages never consumed: {missing}"
    by_name = {m["name"]: m for m in consumed}
    for name, got in by_name.items():
        p = plan[name]
        assert got["topic"] == topic
        assert body_of(got) == p.body.encode(), name
        assert got["tags"] == p.tags, name
        assert got["keys"] == p.keys, name
        assert {k: got["props"].get(k) for k in p.props} == p.props, f"{name}: user properties {got['props']}"
        assert not TX_INTERNAL & got["props"].keys(), f"{name}: transaction-internal properties {got['props']}"
        assert got["msgId"] == transaction_ids[name], f"{name}: msgId {got['msgId']} is not the transaction id"
        assert got["sysFlag"] & TRANSACTION_TYPE_MASK == TRANSACTION_COMMIT_TYPE, f"{name}: sysFlag {got['sysFlag']}"
        assert got["reconsumeTimes"] == 0, name
        assert got["time"] >= committed[name] - 50, f"{name}: consumed at {got['time']}, committed at {committed[name]}"
    return by_name


def assert_nothing_pending(server: PocketMQ, groups: list[str]) -> None:
    pending = [h for h in pending_half_messages(server.data_dir / "store.db") if h.producer_group in groups]
    assert not pending, f"half messages still pending: {pending}"


def report(what: str, **values: Any) -> None:
    print(f"\n[go-tx] {what}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


# --------------------------------------------------------------------------- tests


def test_commit_is_consumed_once(go: GoClient, txserver: PocketMQ, names: str) -> None:
    """Local transactions answering commit: every message consumed once, intact, never checked."""
    topic, group = f"{names}-t", f"{names}-pg"
    plan = [msg(f"c{i}", "commit") for i in range(3)]
    producer = go.start_txproduce(txserver.namesrv_addr, topic, group, plan)
    lines = producer.join(60)
    sent = assert_sent_ok(lines, plan)
    assert not of(lines, "check"), f"committed messages were checked: {of(lines, 'check')}"

    consumer = go.start_consume(txserver.namesrv_addr, topic, f"{names}-cg", expect=len(plan), timeout=60)
    consumed = of(consumer.join(90), "message")
    got = assert_oracle([lines], consumed, {p.name: p for p in plan}, topic, {n: r["msgId"] for n, r in sent.items()})
    for name, r in sent.items():
        # The delivered message is the half message re-put in its real queue; it names the half's offset.
        assert got[name]["queueId"] == r["queue"]["queueId"], name
        assert got[name]["preparedOffset"] == int(r["offsetMsgId"][16:], 16), name
    assert_nothing_pending(txserver, [group])


def test_rollback_is_never_consumed(go: GoClient, txserver: PocketMQ, names: str) -> None:
    """Rolled-back messages are never checked nor delivered, past the first check time and two intervals."""
    topic, group = f"{names}-t", f"{names}-pg"
    plan = [msg("marker", "commit"), msg("r0", "rollback"), msg("r1", "rollback")]
    observe_ms = TIMEOUT_MS + 2 * INTERVAL_MS + 500
    producer = go.start_txproduce(txserver.namesrv_addr, topic, group, plan, stay_ms=observe_ms)
    wait_sent(producer, [p.name for p in plan])
    consumer = go.start_consume(
        txserver.namesrv_addr, topic, f"{names}-cg", expect=1, timeout=60, linger=observe_ms / 1000
    )
    lines = producer.join(60)
    sent = assert_sent_ok(lines, plan)
    assert not of(lines, "check"), f"resolved messages were checked: {of(lines, 'check')}"
    consumed = of(consumer.join(90), "message")
    assert_oracle([lines], consumed, {p.name: p for p in plan}, topic, {n: r["msgId"] for n, r in sent.items()})
    assert [m["name"] for m in consumed] == ["marker"]
    assert_nothing_pending(txserver, [group])


def test_unknown_then_check_commits_once(go: GoClient, txserver: PocketMQ, names: str) -> None:
    """UNKNOWN from the local transaction: the broker checks after transactionTimeOut, again every interval; the
    check's COMMIT delivers the message once, not before."""
    topic, group = f"{names}-t", f"{names}-pg"
    plan = [
        msg("marker", "commit"),
        msg("u-first", "unknown", checks=["commit"]),  # committed by the first check
        msg("u-second", "unknown", checks=["unknown", "commit"]),  # first check unanswered, second commits
    ]
    producer = go.start_txproduce(txserver.namesrv_addr, topic, group, plan, wait_checks_ms=30_000)
    wait_sent(producer, [p.name for p in plan])
    # The consumer runs while the two are still pending: it must not see them before their commit.
    consumer = go.start_consume(txserver.namesrv_addr, topic, f"{names}-cg", expect=3, timeout=60, linger=2)
    lines = producer.join(60)
    sent = assert_sent_ok(lines, plan)
    assert not of(lines, "checks-missing"), of(lines, "checks-missing")
    consumed = of(consumer.join(90), "message")
    assert_oracle([lines], consumed, {p.name: p for p in plan}, topic, {n: r["msgId"] for n, r in sent.items()})

    _, _, checks = outcome([lines])
    assert set(checks) == {"u-first", "u-second"}, f"checked: {set(checks)}"
    assert [c["answer"] for c in checks["u-first"]] == ["commit"]
    assert [c["answer"] for c in checks["u-second"]] == ["unknown", "commit"]
    for name, cs in checks.items():
        r = sent[name]
        for n, c in enumerate(cs, start=1):
            # What the check carries: the half message in its real topic and queue, with its ids and group.
            assert c["transactionId"] == c["msgId"] == r["msgId"], c
            assert c["offsetMsgId"] == r["offsetMsgId"], c
            assert (c["topic"], c["queueId"]) == (topic, r["queue"]["queueId"]), c
            assert c["commitLogOffset"] == int(r["offsetMsgId"][16:], 16), c
            assert c["queueOffset"] == r["queueOffset"], c
            assert c["body"] == plan[[p.name for p in plan].index(name)].body
            assert c["props"]["PGROUP"] == group and c["props"]["TRANSACTION_CHECK_TIMES"] == str(n), c["props"]
        first_after = cs[0]["time"] - cs[0]["storeTimestamp"]
        gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(cs)]
        report(
            f"{name} checks", transactionTimeOut=f"{TIMEOUT_MS} ms", first_check_after_store=f"{first_after} ms",
            transactionCheckInterval=f"{INTERVAL_MS} ms", gaps_between_checks=[f"{g} ms" for g in gaps],
            consumed_after_commit=f"{consumed_at(consumed, name) - cs[-1]['time']} ms",
        )  # fmt: skip
        assert TIMEOUT_MS - 100 <= first_after <= TIMEOUT_MS + INTERVAL_MS + 3000, f"{name}: first check {first_after}"
        for g in gaps:
            assert INTERVAL_MS - 100 <= g <= INTERVAL_MS + 3000, f"{name}: checks {g} ms apart"
    assert_nothing_pending(txserver, [group])


def consumed_at(consumed: list[dict[str, Any]], name: str) -> int:
    return next(m["time"] for m in consumed if m["name"] == name)


def test_killed_producer_is_checked_through_a_new_process(go: GoClient, txserver: PocketMQ, names: str) -> None:
    """A producer killed (SIGKILL) inside its local transaction, after the half message was stored: a new producer
    process of the same group answers the broker's check with COMMIT, and the message is consumed once."""
    topic, group = f"{names}-t", f"{names}-pg"
    victim = msg("victim", "commit", block_ms=120_000)  # never returns: the process is killed first
    first_plan = [msg("a-marker", "commit"), victim]
    first = go.start_txproduce(txserver.namesrv_addr, topic, group, first_plan)
    first.wait_for(lambda ls: any(x.get("name") == "victim" for x in of(ls, "local-start")), 30, "victim local tx")
    killed_at = first.events("local-start")[-1]["time"]
    first.sigkill()
    first_lines = list(first.lines)
    assert_sent_ok(first_lines, first_plan[:1])
    assert not [x for x in of(first_lines, "local") if x["name"] == "victim"], "the victim's local tx finished"
    victim_tx = next(x["transactionId"] for x in of(first_lines, "local-start") if x["name"] == "victim")

    # The new process sends a transaction of its own (which also makes the Go client heartbeat the broker, so the
    # broker knows it as a producer of the group) and answers the check for the victim.
    answer = PlannedTx(name="victim", body=victim.body, checks=["commit"], send=False)
    second_plan = [msg("b-marker", "commit"), answer]
    second = go.start_txproduce(txserver.namesrv_addr, topic, group, second_plan, wait_checks_ms=45_000)
    wait_sent(second, ["b-marker"])
    consumer = go.start_consume(txserver.namesrv_addr, topic, f"{names}-cg", expect=3, timeout=75, linger=2)
    second_lines = second.join(75)
    assert_sent_ok(second_lines, second_plan)
    assert not of(second_lines, "checks-missing"), f"no check reached the new producer\n{second.describe()}"
    consumed = of(consumer.join(100), "message")

    ids = {x["name"]: x["msgId"] for x in of(first_lines, "sent") + of(second_lines, "sent")} | {"victim": victim_tx}
    plan = {p.name: p for p in [*first_plan, second_plan[0]]}
    assert_oracle([first_lines, second_lines], consumed, plan, topic, ids)
    [check] = [c for c in of(second_lines, "check") if c["name"] == "victim"]
    assert check["transactionId"] == victim_tx and check["body"] == victim.body, check
    assert check["props"]["PGROUP"] == group, check["props"]
    report(
        "killed producer", first_check_after_store=f"{check['time'] - check['storeTimestamp']} ms",
        check_after_kill=f"{check['time'] - killed_at} ms",
        check_times=check["props"]["TRANSACTION_CHECK_TIMES"],
        consumed_after_commit=f"{consumed_at(consumed, 'victim') - check['time']} ms",
    )  # fmt: skip
    assert_nothing_pending(txserver, [group])

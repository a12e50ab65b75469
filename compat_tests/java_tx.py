"""Run the transactional producer driver (compat_tests/java, ``pocketmq.compat.TxDriver``) for
test_java_transactions.py, and judge what it and a consumer reported.

The driver is built with the rest of the Java project by java_driver.build (one Maven build per client version) and
started as its own JVM per producer process. Its stdout is JSON lines: ``local`` (a local transaction ran), ``sent``
(sendMessageInTransaction returned), ``check`` (checkLocalTransaction was called: transaction id, the message's
properties, the answer), each with ``at`` in ms. Consumers are java_driver's push consumer (``Driver consume``).
"""

from __future__ import annotations

import base64
import itertools
import json
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat_tests.java_driver import JVM_FLAGS, JavaClient, _JsonProcess

TX_MAIN_CLASS = "pocketmq.compat.TxDriver"
COMMIT, ROLLBACK, UNKNOW, BLOCK = "COMMIT_MESSAGE", "ROLLBACK_MESSAGE", "UNKNOW", "BLOCK"


def write_broker_conf(path: Path, timeout_ms: int, interval_ms: int, check_max: int) -> Path:
    """A broker.conf with short transaction check timings, for ``PocketMQ(extra_args=["--config", path])``."""
    path.write_text(
        "# transactional message checks within seconds, for test_java_transactions.py\n"
        f"transactionTimeOut={timeout_ms}\n"
        f"transactionCheckInterval={interval_ms}\n"
        f"transactionCheckMax={check_max}\n"
    )
    return path


@dataclass
class TxMessage:
    """One transactional message and its plan: what the local transaction returns, what checks answer."""

    body: bytes
    key: str  # the first key: identifies the message (and its plan) everywhere
    local: str  # COMMIT / ROLLBACK / UNKNOW / BLOCK (the local transaction never returns)
    checks: list[str] = field(default_factory=list)  # answers to the 1st, 2nd, ... check; the last repeats
    tags: str | None = None
    more_keys: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)
    immunity_seconds: int | None = None  # CHECK_IMMUNITY_TIME_IN_SECONDS
    check_only: bool = False  # not sent by the process given it, only its checks answered (sent by another one)
    local_delay_ms: int = 0  # the local transaction takes this long before it answers

    @property
    def keys(self) -> list[str]:
        return [self.key, *self.more_keys]

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "body": base64.b64encode(self.body).decode(),
            "tags": self.tags,
            "keys": self.keys,
            "props": self.props,
            "local": self.local,
            "checks": self.checks,
        }
        if self.local_delay_ms:
            spec["localDelayMs"] = self.local_delay_ms
        if self.check_only:
            spec["checkOnly"] = True
        if self.immunity_seconds is not None:
            spec["immunitySeconds"] = self.immunity_seconds
        return spec


class TxProducer(_JsonProcess):
    """A TxDriver JVM: sends its messages, then answers checks until stopped."""

    def wait_event(self, kind: str, timeout: float, count: int = 1, key: str | None = None) -> bool:
        def enough(lines: list[dict[str, Any]]) -> bool:
            hits = [x for x in lines if x.get("event") == kind and (key is None or x.get("key") == key)]
            return len(hits) >= count

        return self.wait_until(enough, timeout)

    def wait_sent(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for ``allSent``; fail with the driver's stderr if it does not come or a send failed."""
        ok = self.wait_event("allSent", timeout)
        errors = self.events("sendError")
        assert ok and not errors and not self.garbage, f"transactional sends failed: {errors}\n{self.describe()}"
        return self.events("allSent")[0]

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: the driver shuts its producer down (unregistering it) and exits."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.join(timeout)

    def kill_hard(self) -> None:
        """SIGKILL: no shutdown, no unregistering; the broker only sees the connection drop."""
        self.kill()


def start_tx_producer(
    client: JavaClient,
    namesrv: str,
    topic: str,
    group: str,
    messages: Iterable[TxMessage],
    *,
    send: bool = True,
    parallel: bool = False,
    heartbeat_ms: int = 1000,
) -> TxProducer:
    """Start a TxDriver JVM for ``client``'s version; ``client.close()`` kills it if the test fails."""
    base = client._next(f"tx-{group}")
    spec = base.with_suffix(".json")
    spec.write_text(json.dumps([m.to_spec() for m in messages]))
    cmd = [
        client.java, *JVM_FLAGS, "-cp", client.classpath, TX_MAIN_CLASS, "produce",
        "--namesrv", namesrv, "--topic", topic, "--group", group, "--spec", str(spec),
        "--send", str(send).lower(), "--parallel", str(parallel).lower(), "--heartbeat-ms", str(heartbeat_ms),
        "--log-dir", str(base.with_suffix(".logs")),  # its own: several JVMs writing one file garble it
    ]  # fmt: skip
    producer = TxProducer(cmd, base.with_suffix(".stderr"))
    client._track(producer)
    return producer


# --------------------------------------------------------------------------- judging


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def first_key(msg: dict[str, Any]) -> str | None:
    keys = msg.get("keys") or []
    return keys[0] if keys else None


@dataclass
class Decisions:
    """What the producers decided per message key, from their ``local`` and ``check`` lines."""

    committed: set[str] = field(default_factory=set)
    rolled_back: set[str] = field(default_factory=set)
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # key -> check lines, by time
    local: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> local line

    @classmethod
    def of(cls, producers: Iterable[TxProducer]) -> Decisions:
        d = cls()
        for p in producers:
            sent_ok = {x["key"] for x in p.events("sent") if x.get("status") == "SEND_OK"}
            for x in p.events("local"):
                d.local[x["key"]] = x
                # The local answer is sent with END_TRANSACTION only once the half message was stored (SEND_OK).
                if x["answer"] == COMMIT and x["key"] in sent_ok:
                    d.committed.add(x["key"])
                elif x["answer"] == ROLLBACK and x["key"] in sent_ok:
                    d.rolled_back.add(x["key"])
            for x in p.events("check"):
                d.checks.setdefault(x["key"], []).append(x)
                if x["answer"] == COMMIT:
                    d.committed.add(x["key"])
                elif x["answer"] == ROLLBACK:
                    d.rolled_back.add(x["key"])
        for lines in d.checks.values():
            lines.sort(key=lambda x: x["at"])
        return d


def oracle(decisions: Decisions, received: list[dict[str, Any]]) -> None:
    """Every message a consumer ever saw was committed (by its local transaction or a check), and only once;
    nothing rolled back, nothing whose outcome is unknown. And no message was both committed and rolled back."""
    both = decisions.committed & decisions.rolled_back
    assert not both, f"producers both committed and rolled back {sorted(both)} (a check after the outcome?)"
    counts = Counter(first_key(m) for m in received)
    not_committed = {k: n for k, n in counts.items() if k not in decisions.committed}
    assert not not_committed, (
        f"consumed messages whose transaction was never committed: {not_committed} "
        f"(rolled back: {sorted(set(not_committed) & decisions.rolled_back)})"
    )
    twice = {k: n for k, n in counts.items() if n > 1}
    assert not twice, f"committed messages delivered more than once: {twice}"


def check_timing(decisions: Decisions, key: str, sent_at: int) -> dict[str, Any]:
    """The checks of one message: first check delay after the send started, intervals between checks (ms)."""
    checks = decisions.checks.get(key, [])
    times = [x["at"] for x in checks]
    intervals = [b - a for a, b in itertools.pairwise(times)]
    return {
        "key": key,
        "checks": len(times),
        "first_after_ms": times[0] - sent_at if times else None,
        "intervals_ms": intervals,
        "median_interval_ms": statistics.median(intervals) if intervals else None,
        "check_times_props": [x.get("checkTimes") for x in checks],
    }

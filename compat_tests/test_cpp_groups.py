"""Consumer groups with the stock C++ client (PyPI ``rocketmq`` 0.4.4, bundled ``librocketmq.so`` of the 1.2.x line):
ordered messages across a rebalance, clustering, dead letters and broadcasting, against pocketmq.

Every consumer is its own driver process (``compat_tests/cpp/driver.py``), so a group really has several clients
(distinct client ids, connections and heartbeats). Tests assert what the listeners were handed, in the order they
were handed it: the driver stamps each call with the wall clock when it starts (``recv_us``) and when it returns
(``done_us``); all processes run on this machine and share that clock.

What the 0.4.4 API cannot do, and how that shapes these tests:
- ``maxReconsumeTimes`` cannot be set: CONSUMER_SEND_MSG_BACK from this client carries only ``group``, ``offset``
  and ``delayLevel`` (and its protocol version 63 < V3_4_9 would make a broker ignore a limit anyway), so the
  broker applies the group default of 16 retries; the dead-letter test gets through them quickly with a broker
  whose ``messageDelayLevel`` is 18 levels of 100 ms.
- The consume-from-where policy is fixed at CONSUME_FROM_LAST_OFFSET: a brand-new clustering group still starts at
  offset 0 while the queue's first message is stored; a broadcasting consumer (offsets in a local file, none yet)
  starts at the queue's max offset, so broadcast messages are sent only once every consumer is ready.
- The allocation strategy is fixed (averagely, over sorted client ids) and so are the client's rebalance timer (10 s)
  and lock renewal; a join or leave is seen at once only through NOTIFY_CONSUMER_IDS_CHANGED from the broker.
- An orderly listener that fails is retried locally forever (1.2.x never sends orderly messages back), so dead
  letters are tested with a concurrent listener.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import IN_CI, PocketMQ

pytestmark = pytest.mark.compat

DRIVER = Path(__file__).resolve().parent / "cpp" / "driver.py"
DEFAULT_MAX_RECONSUME_TIMES = 16  # the group default the broker applies to a version-63 client


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module", autouse=True)
def cpp_client() -> dict[str, Any]:
    """The wrapper's capabilities; skip locally (fail in CI) when it cannot be loaded."""
    proc = subprocess.run([sys.executable, str(DRIVER), "probe"], capture_output=True, text=True, timeout=60)
    info: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        info = json.loads(line)
    if not info.get("ok"):
        reason = f"rocketmq 0.4.4 (C++ client) unavailable: {info.get('error') or proc.stderr.strip()[-500:]}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return info


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """HOME of the native client processes of one test: logs in logs/rocketmq-cpp/, broadcast offsets."""
    path = tmp_path / "cpp-home"
    path.mkdir()
    return path


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def item(body: str, key: str, tags: str | None = None, **extra: Any) -> dict[str, Any]:
    props = {k: v for k, v in extra.items() if isinstance(v, str)}
    spec: dict[str, Any] = {"body": base64.b64encode(body.encode()).decode(), "tags": tags, "keys": [key],
                            "props": props}  # fmt: skip
    spec.update({k: v for k, v in extra.items() if not isinstance(v, str)})
    return spec


def first_key(msg: dict[str, Any]) -> str:
    return (msg["keys"] or "").split(" ")[0]


def diagnostics(server: PocketMQ | None, home: Path | None) -> str:
    parts = []
    if server is not None and server.log_path and server.log_path.exists():
        tail = server.log_path.read_text(errors="replace").splitlines()[-30:]
        parts.append(f"--- server log {server.log_path} (tail)\n" + "\n".join(tail))
    if home is not None:
        for log in sorted((home / "logs" / "rocketmq-cpp").glob("*.log*")):
            lines = log.read_text(errors="replace").splitlines()
            bad = [ln for ln in lines if ("(error)" in ln or "(warning)" in ln) and "session_credentials" not in ln]
            parts.append(f"--- client log {log} ({len(lines)} lines; last warnings/errors)\n" + "\n".join(bad[-10:]))
    return "\n".join(parts)


class Driver:
    """One driver subprocess; its JSON lines are collected by a thread."""

    def __init__(self, server: PocketMQ, home: Path, label: str, args: list[str], stdin: bool = False) -> None:
        self.server, self.home, self.label = server, home, label
        cmd = [sys.executable, str(DRIVER), "--namesrv", server.namesrv_addr, "--log-dir", str(home), *args]
        self.stderr_path = home / f"{label}.stderr"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)  # fmt: skip
        self.lines: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if not raw.strip():
                continue
            with self._cond:
                self.lines.append(json.loads(raw))
                self._cond.notify_all()
        with self._cond:
            self.lines.append({"event": "exit"})
            self._cond.notify_all()

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [ln for ln in self.lines if ln.get("event") == name]

    def wait_until(self, pred: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``pred()`` holds (re-checked on each new line, at least every 0.2 s) or the process ended."""
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            with self._cond:
                if left <= 0 or (self.lines and self.lines[-1].get("event") == "exit"):
                    break
                self._cond.wait(min(left, 0.2))
        return pred()

    def wait_exit(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            pytest.fail(f"{self.label} hung\n{self.explain()}")
        self._reader.join(5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        for pipe in (self.proc.stdout, self.proc.stdin):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._stderr.close()

    def explain(self) -> str:
        err = self.stderr_path.read_text(errors="replace")[-1500:] if self.stderr_path.exists() else ""
        return f"{self.label} stderr: {err}\n{diagnostics(self.server, self.home)}"


class Consumer(Driver):
    """A push consumer that leaves its group (clean shutdown) on ``stop()``."""

    def __init__(self, server: PocketMQ, home: Path, label: str, topic: str, group: str, *, expect: int = 0,
                 timeout: float = 120.0, orderly: bool = False, broadcast: bool = False, work_ms: float = 0,
                 reconsume: int = 0, props: tuple[str, ...] = (), thread_count: int = 0,
                 linger: float = 0.0) -> None:  # fmt: skip
        args = [
            "consume", "--topic", topic, "--group", group, "--expect", str(expect), "--timeout", str(timeout),
            "--reconsume", str(reconsume), "--work-ms", str(work_ms), "--linger", str(linger), "--stdin-stop",
            "--thread-count", str(thread_count), *[a for p in props for a in ("--prop", p)],
            *(["--orderly"] if orderly else []), *(["--broadcast"] if broadcast else []),
        ]  # fmt: skip
        super().__init__(server, home, label, args, stdin=True)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.events("message")

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["status"] == "CONSUME_SUCCESS"]

    def wait_ready(self, timeout: float = 30.0) -> int:
        """Wait for the consumer to have started; return its wall-clock ms at that moment."""
        ok = self.wait_until(lambda: any(ln.get("event") in ("ready", "error") for ln in self.lines), timeout)
        ready = self.events("ready")
        assert ok and ready and not self.events("error"), f"{self.label} did not start: {self.lines}\n" + (
            self.explain()
        )
        return int(ready[0]["ms"])

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """Make the consumer leave its group cleanly; return its final line."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
        self.wait_exit(timeout)
        final = [ln for ln in self.lines if ln.get("event") in ("done", "stopped", "timeout")]
        assert final, f"{self.label} ended without a final line (rc={self.proc.returncode})\n{self.explain()}"
        return final[-1]


class Producer(Driver):
    def __init__(self, server: PocketMQ, home: Path, label: str, topic: str, items: list[dict[str, Any]],
                 mode: str = "sync", interval_ms: float = 0) -> None:  # fmt: skip
        self.count = len(items)
        spec = home / f"spec-{label}-{uuid.uuid4().hex[:8]}.json"
        spec.write_text(json.dumps(items))
        # Async sends are all in flight at once: thousands of them on a busy machine need more than the 3 s default.
        timeout_ms = 30_000 if mode == "async" else 3_000
        args = ["produce", "--topic", topic, "--group", unique("CppPG"), "--mode", mode, "--spec", str(spec),
                "--interval-ms", str(interval_ms), "--send-timeout-ms", str(timeout_ms)]  # fmt: skip
        super().__init__(server, home, label, args)

    def sent(self) -> int:
        return len(self.events("sent"))

    def results(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Wait for the producer to finish; its per-message lines by index, asserting every send succeeded."""
        self.wait_exit(timeout)
        per_msg = sorted((ln for ln in self.lines if "index" in ln), key=lambda ln: ln["index"])
        errors = [ln for ln in self.lines if ln.get("event") == "error"]
        assert self.proc.returncode == 0 and not errors and len(per_msg) == self.count, (
            f"{self.label} failed, rc={self.proc.returncode}: {errors or self.lines[-5:]}\n{self.explain()}"
        )
        assert all(r["status"] == "OK" for r in per_msg), [r for r in per_msg if r["status"] != "OK"][:5]
        return per_msg


def produce(server: PocketMQ, home: Path, topic: str, items: list[dict[str, Any]], mode: str = "sync",
            timeout: float = 120.0) -> list[dict[str, Any]]:  # fmt: skip
    producer = Producer(server, home, unique("producer"), topic, items, mode)
    try:
        return producer.results(timeout)
    finally:
        producer.close()


@contextlib.contextmanager
def dedicated_server(tmp_path: Path, name: str, broker_conf: str) -> Iterator[PocketMQ]:
    """A pocketmq of its own, configured by a broker.conf (``pocketmq up --config``)."""
    conf = tmp_path / f"{name}-broker.conf"
    conf.write_text(broker_conf)
    server = PocketMQ(data_dir=tmp_path / name / "data", extra_args=["--config", str(conf)])
    server.data_dir.parent.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def procs() -> Iterator[list[Driver]]:
    """Driver processes of one test, killed at its end if still running."""
    started: list[Driver] = []
    yield started
    for p in started:
        p.close()


# ------------------------------------------------------------------------------------------------ ordered

KEYS, STEPS = 8, 200


def ordered_items(prefix: str) -> list[dict[str, Any]]:
    """8 keys x 200 steps, interleaved (step-major) as a stream of business events would be; each sent with its key
    number as the sharding argument, so a key always goes to queue ``key % 4``."""
    return [
        item(f"{prefix} key {k} step {s} ✓", f"{prefix}-{k}:{s}", tags="ord", step=str(s), order_arg=k)
        for s in range(STEPS)
        for k in range(KEYS)
    ]


def key_step(msg: dict[str, Any]) -> tuple[str, int]:
    name, step = first_key(msg).rsplit(":", 1)
    return name, int(step)


def send_ordered(server: PocketMQ, home: Path, topic: str, items: list[dict[str, Any]]) -> None:
    results = produce(server, home, topic, items, mode="orderly")
    per_key: dict[str, list[int]] = defaultdict(list)
    for it, res in zip(items, results, strict=True):
        per_key[it["keys"][0].rsplit(":", 1)[0]].append(res["queue_offset"])
    for key, offsets in per_key.items():
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), f"{key}: not stored in send order"


def runs_per_key(msgs: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Steps of each key in the order one consumer's listener was handed them (accepted deliveries only)."""
    out: dict[str, list[int]] = defaultdict(list)
    for m in msgs:
        if m["status"] == "CONSUME_SUCCESS":
            key, step = key_step(m)
            out[key].append(step)
    return out


def assert_serial_per_queue(consumer: Consumer) -> None:
    """An orderly listener is never called for two messages of one queue at the same time."""
    by_queue: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in consumer.messages:
        by_queue[m["queue_id"]].append(m)
    for queue_id, msgs in by_queue.items():
        for a, b in itertools.pairwise(msgs):
            assert b["recv_us"] >= a["done_us"], f"{consumer.label}: queue {queue_id} consumed concurrently: {a}, {b}"


def test_orderly_one_consumer_keeps_per_key_order(pocketmq: PocketMQ, home: Path, procs: list[Driver]) -> None:
    """One orderly consumer: every key's 200 steps arrive strictly in order, each exactly once, none lost."""
    topic, prefix = unique("CppOrd"), "o1"
    items = ordered_items(prefix)
    send_ordered(pocketmq, home, topic, items)

    consumer = Consumer(pocketmq, home, "orderly", topic, unique("CppOG"), expect=len(items), timeout=60,
                        orderly=True, work_ms=1, thread_count=4, linger=1.5)  # fmt: skip
    procs.append(consumer)
    consumer.wait_exit(90)
    final = [ln for ln in consumer.lines if ln.get("event") in ("done", "timeout")]
    runs = runs_per_key(consumer.messages)
    assert final and final[-1]["event"] == "done", (
        f"got {sum(map(len, runs.values()))}/{len(items)}: {final}\n{consumer.explain()}"
    )
    assert sorted(runs) == [f"{prefix}-{k}" for k in range(KEYS)]
    for key, steps in runs.items():
        assert steps == list(range(STEPS)), f"{key}: consumed out of order, lost or twice: {steps}"
    assert len(consumer.messages) == len(items), "a message was delivered more than once"
    queue_of_key = {key_step(m)[0]: set() for m in consumer.messages}
    for m in consumer.messages:
        queue_of_key[key_step(m)[0]].add(m["queue_id"])
    assert all(len(q) == 1 for q in queue_of_key.values()), f"a key spread over several queues: {queue_of_key}"
    bodies = {first_key(m): m["body"] for m in consumer.messages}
    assert bodies == {it["keys"][0]: it["body"] for it in items}, "a body differs"
    assert_serial_per_queue(consumer)


LOCK_EXPIRY_MS = 10_000  # rebalanceLockMaxLiveTime of the orderly-rebalance broker (Apache default 60 s)


@pytest.fixture
def short_lock_server(tmp_path: Path) -> Iterator[PocketMQ]:
    """A pocketmq whose queue locks expire after 10 s without renewal instead of 60 s (see the test below)."""
    with dedicated_server(tmp_path, "short-lock", f"rebalanceLockMaxLiveTime={LOCK_EXPIRY_MS}\n") as srv:
        yield srv


@pytest.mark.slow
def test_orderly_rebalance_join_and_leave(short_lock_server: PocketMQ, home: Path, procs: list[Driver]) -> None:
    """Two orderly consumers of one group: B joins while A works through a backlog, then A leaves cleanly.

    Asserted over both processes, per key:
    - none lost: every step 0..199 was accepted at least once;
    - each consumer was handed the key's steps as one gap-free ascending run (never an earlier step after a later
      one, never a skipped step);
    - no step was handed to any listener before some listener had finished the previous step (wall clock);
    - redeliveries happen only at an ownership change, as the new owner's replay of steps the old owner had
      consumed, and only when B joins. At the join the 1.2.x client computes B's start offset when it
      rebalances (QUERY_CONSUMER_OFFSET), possibly before A has dropped the queue and committed its progress
      (A may also be in the middle of a message when it drops the queue); B then gets the lock (LOCK_BATCH_MQ)
      once A released it and replays from that committed offset. When A leaves it finishes its messages,
      unlocks, commits its offsets and only then unregisters, and B takes A's queues only after the broker
      dropped A, so B must start exactly after A's last step: no redelivery.

    The 1.2.x client's UNLOCK_BATCH_MQ at shutdown leaves out the first queue it holds on each broker (the
    request is built skipping it), so B gets that queue only when the broker lets A's lock expire; this broker
    uses 10 s instead of 60 s to keep the test short. That is below the client's 20 s lock renewal, which is
    harmless here: B joins a few seconds after A locked its queues, while those locks are still valid, and each
    queue is otherwise only ever asked for by the one consumer it is allocated to.
    """
    server = short_lock_server
    topic, prefix, group = unique("CppOrdRb"), "o2", unique("CppOG")
    items = ordered_items(prefix)
    send_ordered(server, home, topic, items)
    total = len(items)

    def distinct(*cs: Consumer) -> int:
        return len({first_key(m) for c in cs for m in c.accepted})

    # 15 ms per message: each queue's 400 messages take A about 6 s, long enough to join and leave mid-stream.
    a = Consumer(server, home, "orderly-A", topic, group, orderly=True, work_ms=15, thread_count=4, timeout=120)
    procs.append(a)
    a.wait_ready()
    assert a.wait_until(lambda: distinct(a) >= 300, 30), f"A consumed {distinct(a)}\n{a.explain()}"
    b = Consumer(server, home, "orderly-B", topic, group, orderly=True, work_ms=15, thread_count=4, timeout=120)
    procs.append(b)
    b_ready = b.wait_ready()
    assert b.wait_until(lambda: len(b.accepted) >= 50, 30), (
        f"B got no queue within 30 s of joining (A: {distinct(a)} consumed)\n{b.explain()}"
    )
    b_first = min(m["recv_us"] for m in b.messages) // 1000

    # A leaves once it is half-way through every key it kept (its queues after B joined), so B resumes them mid-way.
    def a_halfway() -> bool:
        kept = {key_step(m) for m in a.accepted if m["recv_us"] // 1000 > b_first}
        last: dict[str, int] = {}
        for key, step in kept:
            last[key] = max(step, last.get(key, -1))
        return bool(last) and min(last.values()) >= STEPS // 2

    assert a.wait_until(a_halfway, 60), f"A not half-way through its keys: {distinct(a, b)} consumed\n{a.explain()}"
    a_stop_ms = int(time.time() * 1000)
    a.stop()
    a_gone_ms = a.events("shutdown")[0]["ms"]
    limit = LOCK_EXPIRY_MS / 1000 + 30
    assert b.wait_until(lambda: distinct(a, b) == total, limit), (
        f"{limit} s after A left, {distinct(a, b)}/{total} consumed\n{b.explain()}"
    )
    b.wait_until(lambda: False, 1.5)  # let late redeliveries show up
    b.stop()
    print(f"\n[orderly rebalance] B handed its first message {b_first - b_ready} ms after start() returned; "
          f"A's clean shutdown took {a_gone_ms - a_stop_ms} ms")  # fmt: skip

    runs = {c.label: runs_per_key(c.messages) for c in (a, b)}
    keys = [f"{prefix}-{k}" for k in range(KEYS)]
    handed: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for c in (a, b):
        for m in c.accepted:
            handed[key_step(m)].append(m)
    lost = [(k, s) for k in keys for s in range(STEPS) if (k, s) not in handed]
    assert not lost, f"{len(lost)} messages never consumed: {lost[:10]}"
    for label, per_key in runs.items():
        for key, steps in per_key.items():
            assert steps == list(range(steps[0], steps[0] + len(steps))), f"{label}, {key}: not one ascending run"
    # A key's first owner starts it at step 0 (A, or B for a queue A had not got to before B joined: the client
    # drains one queue's cached messages per consume thread before turning to the next)
    first_owner = {k: runs["orderly-A"].get(k) or runs["orderly-B"][k] for k in keys}
    assert all(steps[0] == 0 for steps in first_owner.values()), {k: v[0] for k, v in first_owner.items()}
    for (key, step), deliveries in handed.items():
        if step == 0:
            continue
        before = min(m["done_us"] for m in handed[(key, step - 1)])
        early = [m for m in deliveries if m["recv_us"] < before]
        assert not early, f"{key} step {step} handed over before step {step - 1} was consumed: {early[:1]}"
    assert_serial_per_queue(a)
    assert_serial_per_queue(b)

    report = []
    for key in keys:
        a_steps, b_steps = runs["orderly-A"].get(key, []), runs["orderly-B"].get(key)
        assert b_steps, f"{key}: B never took it over after A left"
        assert b_steps[-1] == STEPS - 1, f"{key}: B did not finish the key"
        b_start_ms = min(m["recv_us"] for m in b.accepted if key_step(m)[0] == key) // 1000
        replayed = len(set(a_steps) & set(b_steps))
        phase = "join" if b_start_ms < a_stop_ms else "leave"
        detail = f", resumed {b_start_ms - a_gone_ms} ms after A left" if phase == "leave" else ""
        a_run = f"0..{a_steps[-1]}" if a_steps else "none"
        report.append(f"{key}: A {a_run}, B {b_steps[0]}..{b_steps[-1]} (at the {phase}{detail}), "
                      f"{replayed} replayed")  # fmt: skip
        if phase == "leave":
            assert replayed == 0, f"{key}: B replayed {replayed} steps A had consumed before leaving cleanly"
    print("[orderly rebalance] " + "; ".join(report))


# ------------------------------------------------------------------------------------------------ clustering


@pytest.mark.slow
def test_clustering_three_consumers_share_10000(pocketmq: PocketMQ, home: Path, procs: list[Driver]) -> None:
    """Three consumers (processes) of one group share 10,000 messages: all are consumed; once the group is stable
    each message is consumed by exactly one consumer, exactly once, and every queue by one consumer only.

    Phase 1 (4,000 messages, at-least-once): C1 and C2 consume a backlog and a live stream; C3 joins mid-stream.
    The rebalance time is measured on that stream: from C3's start() call to the moment every queue that changed
    owner is consumed by its new owner, and to the last message its previous owner consumed. Phase 2 (6,000
    messages, stable group): exactly once.
    """
    topic, group = unique("CppClu"), unique("CppCG")
    phase0 = [item(f"p0 message {i}", f"p0-{i}", tags="clu") for i in range(1000)]
    phase1 = [item(f"p1 message {i}", f"p1-{i}", tags="clu") for i in range(3000)]
    phase2 = [item(f"p2 message {i}", f"p2-{i}", tags="clu") for i in range(6000)]
    produce(pocketmq, home, topic, phase0, mode="async")  # creates the topic (4 queues) and a backlog

    cs = [Consumer(pocketmq, home, f"clu-C{n}", topic, group, timeout=180) for n in (1, 2)]
    procs.extend(cs)
    for c in cs:
        c.wait_ready()

    def keys(prefix: str, *which: Consumer) -> set[str]:
        return {first_key(m) for c in which or tuple(cs) for m in c.accepted if first_key(m).startswith(prefix)}

    # Phase 1: a live stream (sync sends, about 1,000 per second) during which C3 joins.
    streamer = Producer(pocketmq, home, "clu-stream", topic, phase1, mode="sync", interval_ms=0.5)
    procs.append(streamer)
    assert streamer.wait_until(lambda: streamer.sent() >= 600, 60), streamer.explain()
    c3 = Consumer(pocketmq, home, "clu-C3", topic, group, timeout=180)
    procs.append(c3)
    cs.append(c3)
    c3.wait_ready()
    t3 = c3.events("starting")[0]["ms"]  # C3 calls start(): route lookups, first heartbeat, first rebalance
    streamer.results()
    assert c3.wait_until(lambda: len(keys("p0") | keys("p1")) == 4000, 60), (
        f"phase 1: {len(keys('p0') | keys('p1'))}/4000 consumed\n{c3.explain()}"
    )

    # Rebalance time, from the stream: which consumer got each queue's messages, when.
    got: dict[int, list[tuple[int, str]]] = defaultdict(list)  # queue -> (recv ms, consumer)
    for c in cs:
        for m in c.messages:
            got[m["queue_id"]].append((m["recv_ms"], c.label))
    before = {q: max((x for x in v if x[0] < t3), default=(0, None))[1] for q, v in got.items()}  # owner at t3
    after_owner = {q: max(v)[1] for q, v in got.items()}  # who had the queue's last message of phase 1
    moved = [q for q in got if after_owner[q] != before[q]]
    assert any(after_owner[q] == "clu-C3" for q in moved), (
        f"no queue moved to C3 (owners before {before}, after {after_owner})\n{c3.explain()}"
    )
    settle = max(min(ms for ms, lbl in got[q] if lbl == after_owner[q] and ms >= t3) - t3 for q in moved)
    old_last = max((ms for q in moved for ms, lbl in got[q] if lbl != after_owner[q]), default=t3) - t3
    print(f"\n[clustering] rebalance when C3 joined (from its start() call, which returned after "
          f"{c3.events('ready')[0]['ms'] - t3} ms): queue(s) {sorted(moved)} consumed by the new owner after "
          f"{settle} ms, last consumed by the previous owner at {old_last:+} ms")  # fmt: skip
    # NOTIFY_CONSUMER_IDS_CHANGED makes every member rebalance at once; without it they would wait for their 10 s
    # timer (the old owner would go on consuming C3's queue meanwhile).
    assert settle < 5_000 and old_last < 5_000, f"slow rebalance: C3 after {settle} ms, old owner until {old_last} ms"

    # Phase 2: stable group.
    before2 = {c.label: len(c.messages) for c in cs}
    produce(pocketmq, home, topic, phase2, mode="async")
    assert c3.wait_until(lambda: len(keys("p2")) == len(phase2), 60), (
        f"phase 2: {len(keys('p2'))}/{len(phase2)} consumed\n{c3.explain()}"
    )
    c3.wait_until(lambda: False, 2)  # let duplicates, if any, show up
    # The group is stable until the first consumer leaves. Leaving is another rebalance: the queues of the one
    # leaving are taken over from their committed offsets, and a remaining consumer that is given other queues
    # drops one and commits it (oneway) while its new owner may already be reading that offset, so messages
    # delivered after this point may be delivered again (at least once).
    unstable_from = int(time.time() * 1000)
    for c in cs:
        c.stop()
    stable = {c.label: [m for m in c.messages[before2[c.label] :] if m["recv_ms"] < unstable_from] for c in cs}

    everything = {it["keys"][0] for it in phase0 + phase1 + phase2}
    consumed = keys("")
    assert everything <= consumed, f"{len(everything - consumed)} of 10000 never consumed"
    deliveries = Counter(first_key(m) for msgs in stable.values() for m in msgs)
    assert set(deliveries) == {it["keys"][0] for it in phase2}, "phase 2 not consumed before the group changed"
    twice = {k: n for k, n in deliveries.items() if n > 1}
    assert not twice, f"stable group: {len(twice)} messages delivered more than once: {list(twice.items())[:5]}"
    owners: dict[int, set[str]] = defaultdict(set)
    for label, msgs in stable.items():
        for m in msgs:
            owners[m["queue_id"]].add(label)
    assert all(len(o) == 1 for o in owners.values()), f"stable group: a queue consumed by several consumers {owners}"
    share = Counter(next(iter(o)) for o in owners.values())
    assert sorted(share.values()) == [1, 1, 2], f"4 queues over 3 consumers should be 2/1/1: {dict(share)}"
    all_deliveries = Counter(first_key(m) for c in cs for m in c.messages)
    again = {p: sum(n - 1 for k, n in all_deliveries.items() if k.startswith(p)) for p in ("p0", "p1", "p2")}
    print(f"[clustering] stable phase: queues {dict(sorted((q, next(iter(o))) for q, o in owners.items()))}; "
          f"redeliveries: {again['p0'] + again['p1']} in phase 1 (C2 and C3 joining), {again['p2']} of phase 2 "
          f"messages when the consumers left")  # fmt: skip


# ------------------------------------------------------------------------------------------------ dead letters

DLQ_PROPS = ("color", "note", "RETRY_TOPIC", "ORIGIN_MESSAGE_ID")


@pytest.fixture
def fast_retry_server(tmp_path: Path) -> Iterator[PocketMQ]:
    """A pocketmq whose 18 delay levels are all 100 ms, so 16 retries take seconds, not 4 h 46 min."""
    levels = " ".join(["100ms"] * 18)
    with dedicated_server(tmp_path, "fast-retry", f"# every retry level 100 ms\nmessageDelayLevel={levels}\n") as srv:
        yield srv


@pytest.mark.slow
def test_dead_letter_after_default_retries(fast_retry_server: PocketMQ, home: Path, procs: list[Driver]) -> None:
    """A message whose listener always answers RECONSUME_LATER is retried 16 times (the group default: the client
    sends no limit of its own), then its 17th failure puts it in ``%DLQ%<group>``, intact, where a consumer of that
    topic reads it.

    One poison message only: the 1.2.x concurrent service hands a listener call the whole pulled batch, and the C API
    stops at the first message refused and refuses the rest of the batch unseen, so with several poison messages in
    one retry pull the listener would not see every delivery.
    """
    server = fast_retry_server
    topic, group = unique("CppDlq"), unique("CppDG")
    # The client looks up %RETRY%<group> before its first heartbeat creates it, and then only rebalances on its 10 s
    # timer, so the first retry would be 10 s late. A short first run of the group (on another topic: a consumer
    # heartbeats only to brokers of topics that exist) creates the retry topic beforehand.
    warm = f"{topic}_warm"
    produce(server, home, warm, [item("warm-up", "warm")])
    first_run = Consumer(server, home, "group-first-run", warm, group, expect=1, timeout=30)
    procs.append(first_run)
    first_run.wait_ready()
    first_run.wait_exit(30)

    poison = item("poison message ünïcødé ✓", "dlq-0", tags="poison", color="red", note="spaces = and : #0")
    [sent] = produce(server, home, topic, [poison])
    expected = DEFAULT_MAX_RECONSUME_TIMES + 1  # the first delivery and 16 retries
    failing = Consumer(server, home, "always-fails", topic, group, reconsume=1_000_000, timeout=120,
                       props=DLQ_PROPS)  # fmt: skip
    procs.append(failing)
    ok = failing.wait_until(lambda: len(failing.messages) >= expected, 60)
    assert ok, f"{len(failing.messages)} deliveries in 60 s\n{failing.explain()}"
    failing.wait_until(lambda: False, 1.5)  # an 18th delivery would come within ~0.2 s
    failing.stop()

    got = failing.messages
    assert [m["reconsume_times"] for m in got] == list(range(expected)), [m["reconsume_times"] for m in got]
    assert all(m["status"] == "RECONSUME_LATER" for m in got)
    assert {first_key(m) for m in got} == {"dlq-0"}
    assert {m["topic"] for m in got} == {topic}, "retries must be handed over under the original topic"
    assert {m["uniq_key"] for m in got} == {sent["msg_id"]}, "the message id changed across retries"
    assert {m["body"] for m in got} == {poison["body"]}
    assert all(m["props"]["color"] == "red" for m in got)
    assert all(m["props"]["RETRY_TOPIC"] == topic for m in got[1:]), [m["props"] for m in got[1:3]]
    gaps = [b["recv_ms"] - a["recv_ms"] for a, b in itertools.pairwise(got)]
    assert min(gaps) >= 90, f"retried before its 100 ms delay: {gaps}"
    assert max(gaps) < 3000, f"retries not on the configured 100 ms levels (default level 3 is 10 s): {gaps}"
    print(f"\n[dead letter] 17 deliveries in {got[-1]['recv_ms'] - got[0]['recv_ms']} ms, "
          f"{min(gaps)}..{max(gaps)} ms apart: {gaps}")  # fmt: skip

    dlq = f"%DLQ%{group}"
    reader = Consumer(server, home, "dlq-reader", dlq, unique("CppDR"), expect=1, timeout=60, linger=1.5,
                      props=DLQ_PROPS)  # fmt: skip
    procs.append(reader)
    reader.wait_exit(90)
    final = [ln for ln in reader.lines if ln.get("event") in ("done", "timeout")]
    assert final and final[-1]["event"] == "done", f"{dlq}: {final}\n{reader.explain()}"
    [m] = reader.messages  # exactly one copy
    assert m["topic"] == dlq
    assert (m["body"], m["tags"], m["keys"]) == (poison["body"], "poison", "dlq-0")
    assert (m["props"]["color"], m["props"]["note"]) == ("red", "spaces = and : #0")
    assert m["props"]["RETRY_TOPIC"] == topic, m["props"]
    assert m["props"]["ORIGIN_MESSAGE_ID"] == got[1]["props"]["ORIGIN_MESSAGE_ID"] != ""
    assert m["uniq_key"] == sent["msg_id"]
    # stored like a retry (SendMessageProcessor): the reconsume times of the failed delivery + 1
    assert m["reconsume_times"] == DEFAULT_MAX_RECONSUME_TIMES + 1, m["reconsume_times"]
    assert m["queue_id"] == 0 and m["queue_offset"] == 0


# ------------------------------------------------------------------------------------------------ broadcasting


def test_broadcasting_three_consumers_each_get_all(pocketmq: PocketMQ, home: Path, procs: list[Driver]) -> None:
    """Three BROADCASTING consumers of one group (processes): each gets all 300 messages, each exactly once."""
    topic, group, n = unique("CppBc"), unique("CppBG"), 300
    produce(pocketmq, home, topic, [item("warm-up", "warm", tags="warm")])  # the topic must exist (4 queues)
    cs = [
        Consumer(pocketmq, home, f"bc-C{i}", topic, group, broadcast=True, expect=n, timeout=60, linger=1.5)
        for i in (1, 2, 3)
    ]
    procs.extend(cs)
    for c in cs:
        c.wait_ready()
    items = [item(f"broadcast {i}", f"bc-{i}", tags="bc", color=str(i % 3)) for i in range(n)]
    produce(pocketmq, home, topic, items)
    for c in cs:
        c.wait_exit(90)
    wanted = {it["keys"][0]: it for it in items}
    for c in cs:
        final = [ln for ln in c.lines if ln.get("event") in ("done", "timeout")]
        msgs = [m for m in c.messages if first_key(m) != "warm"]
        per = Counter(first_key(m) for m in msgs)
        assert final and final[-1]["event"] == "done", f"{c.label}: {len(per)}/{n}: {final}\n{c.explain()}"
        assert set(per) == set(wanted), f"{c.label}: missing {sorted(set(wanted) - set(per))[:10]}"
        assert max(per.values()) == 1, f"{c.label}: delivered twice: {[k for k, v in per.items() if v > 1][:5]}"
        assert all(m["body"] == wanted[first_key(m)]["body"] for m in msgs)
        assert len({m["queue_id"] for m in msgs}) == 4, f"{c.label} did not read every queue"

"""Compatibility of the stock C++ client (PyPI ``rocketmq`` 0.4.4, bundled ``librocketmq.so``) with pocketmq.

The native client runs in subprocesses (``compat_tests/cpp/driver.py``), never in the pytest process: it can
crash or hang. Each test asserts what the client really received: bodies byte-equal, tags, keys, user
properties and counts. Bodies never contain NUL bytes: the 0.4.4 C API passes them as C strings.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import IN_CI, PocketMQ

pytestmark = pytest.mark.compat

DRIVER = Path(__file__).resolve().parent / "cpp" / "driver.py"
PROPS = ["color", "seq", "note"]  # user properties the tests set and the consumer reads back


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
def client_home(tmp_path: Path) -> Path:
    """HOME of the native client processes of one test: their logs land in logs/rocketmq-cpp/ below it."""
    home = tmp_path / "cpp-home"
    home.mkdir()
    return home


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def body_bytes(n: int, seed: str) -> bytes:
    """``n`` pseudo-random bytes without NUL (the 0.4.4 C API truncates at NUL)."""
    rnd = random.Random(seed)
    return rnd.randbytes(n).replace(b"\0", b"\x01")


def text_body(n: int, seed: str) -> bytes:
    """Compressible but non-trivial text of exactly ``n`` bytes, with some non-ASCII UTF-8."""
    chunk = f"{seed} ünïcødé ✓ line ".encode()
    out = bytearray()
    i = 0
    while len(out) < n:
        out += chunk + str(i).encode() + b"\n"
        i += 1
    return bytes(out[:n])


def item(body: bytes, tags: str | None = None, keys: list[str] | None = None, **props: str) -> dict[str, Any]:
    return {"body": base64.b64encode(body).decode(), "tags": tags, "keys": keys or [], "props": props}


def diagnostics(server: PocketMQ | None, home: Path | None) -> str:
    parts = []
    if server is not None and server.log_path and server.log_path.exists():
        tail = server.log_path.read_text(errors="replace").splitlines()[-40:]
        parts.append(f"--- server log {server.log_path} (tail)\n" + "\n".join(tail))
    if home is not None:
        for log in sorted((home / "logs" / "rocketmq-cpp").glob("*.log*")):
            lines = log.read_text(errors="replace").splitlines()
            bad = [ln for ln in lines if ("(error)" in ln or "(warning)" in ln) and "session_credentials" not in ln]
            bad = bad[-15:]
            parts.append(f"--- client log {log} ({len(lines)} lines; last warnings/errors)\n" + "\n".join(bad))
    return "\n".join(parts)


def produce(
    server: PocketMQ,
    home: Path,
    topic: str,
    group: str,
    mode: str,
    items: list[dict[str, Any]],
    retry_for: float = 0.0,
    timeout: float = 90.0,
) -> list[dict[str, Any]]:
    """Run one producer process; return its per-message lines (ordered by index), asserting all succeeded."""
    spec = home / f"spec-{uuid.uuid4().hex[:8]}.json"
    spec.write_text(json.dumps(items))
    cmd = [
        sys.executable, str(DRIVER), "--namesrv", server.namesrv_addr, "--log-dir", str(home),
        "produce", "--topic", topic, "--group", group, "--mode", mode, "--spec", str(spec),
        "--retry-for", str(retry_for),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"producer ({mode}) hung for {timeout}s; stderr: {exc.stderr!r}\n{diagnostics(server, home)}")
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.strip()]
    per_msg = sorted((ln for ln in lines if "index" in ln and ln.get("event") in ("sent", "error")),
                     key=lambda ln: ln["index"])  # fmt: skip
    errors = [ln for ln in lines if ln.get("event") == "error"]
    assert proc.returncode == 0 and not errors and len(per_msg) == len(items), (
        f"producer ({mode}) failed, rc={proc.returncode}: {errors or lines}\n"
        f"stderr: {proc.stderr[-2000:]}\n{diagnostics(server, home)}"
    )
    return per_msg


class Consumer:
    """A push consumer (clustering) in a driver subprocess; its JSON lines are collected by a thread."""

    def __init__(self, server: PocketMQ, home: Path, topic: str, group: str, expr: str = "*",
                 expect: int = 0, timeout: float = 60.0, linger: float = 0.0, reconsume: int = 0,
                 orderly: bool = False) -> None:  # fmt: skip
        self.server, self.home = server, home
        cmd = [
            sys.executable, str(DRIVER), "--namesrv", server.namesrv_addr, "--log-dir", str(home),
            "consume", "--topic", topic, "--group", group, "--expr", expr, "--expect", str(expect),
            "--timeout", str(timeout), "--linger", str(linger), "--reconsume", str(reconsume),
            *[arg for p in PROPS for arg in ("--prop", p)], *(["--orderly"] if orderly else []),
        ]  # fmt: skip
        self.stderr_path = home / f"consumer-{group}.stderr"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
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

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._cond:
            return [ln for ln in self.lines if ln.get("event") == "message"]

    def wait_until(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1].get("event") == "exit"):
                    return pred(self.lines)
                self._cond.wait(left)
            return True

    def wait_ready(self, timeout: float = 30.0) -> None:
        ok = self.wait_until(lambda ls: any(ln.get("event") in ("ready", "error") for ln in ls), timeout)
        errors = [ln for ln in self.lines if ln.get("event") == "error"]
        assert ok and not errors, f"consumer did not start: {self.lines}\n{self.explain()}"

    def finish(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for the process to end on its own; return its final (done/timeout) line."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            pytest.fail(f"consumer process hung\n{self.explain()}")
        self._reader.join(5)
        final = [ln for ln in self.lines if ln.get("event") in ("done", "timeout")]
        return final[-1] if final else {"event": "crashed", "rc": self.proc.returncode}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def explain(self) -> str:
        err = self.stderr_path.read_text(errors="replace")[-2000:] if self.stderr_path.exists() else ""
        return f"consumer stderr: {err}\n{diagnostics(self.server, self.home)}"


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    started: list[Consumer] = []
    yield started
    for c in started:
        c.close()


def by_key(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Received messages indexed by their first key (every test message has a unique first key).

    Only deliveries the consumer accepted count; those it asked to get again (RECONSUME_LATER) do not.
    """
    out: dict[str, dict[str, Any]] = {}
    for m in messages:
        if m.get("status", "CONSUME_SUCCESS") == "CONSUME_SUCCESS":
            out.setdefault((m["keys"] or "").split(" ")[0], m)
    return out


def assert_intact(sent: list[dict[str, Any]], received: dict[str, dict[str, Any]], topic: str) -> None:
    """Every sent item arrived once or more, with body, tags, keys and user properties unchanged."""
    missing = [it["keys"][0] for it in sent if it["keys"][0] not in received]
    assert not missing, f"{len(missing)} of {len(sent)} messages never arrived: {missing[:10]}"
    for it in sent:
        got = received[it["keys"][0]]
        key = it["keys"][0]
        assert got["topic"] == topic, key
        assert got["body"] == it["body"], f"{key}: body differs ({got['body_len']} bytes received)"
        assert (got["tags"] or None) == it["tags"], key
        assert got["keys"] == " ".join(it["keys"]), key
        # the C++ getProperty() answers "" for an absent property
        got_props = {p: got["props"].get(p) or None for p in PROPS}
        assert got_props == {p: it["props"].get(p) for p in PROPS}, key


def sample_items(prefix: str, n: int, tags: tuple[str, ...] = ("TagA", "TagB")) -> list[dict[str, Any]]:
    return [
        item(
            f"{prefix} message {i} ".encode() + "ünïcødé ✓ ".encode() + bytes(range(1, 32)) + b"\xff\xfe\x80",
            tags=tags[i % len(tags)],
            keys=[f"{prefix}-k{i}", f"extra{i}"],
            color=["blue", "red", "green"][i % 3],
            seq=str(i),
            note=f"value with spaces, ünïcødé and = : ; signs #{i}",
        )
        for i in range(n)
    ]


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("mode", ["sync", "async", "oneway", "batch", "orderly"])
def test_send_modes_then_push_consume(
    mode: str, pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer], cpp_client: dict[str, Any]
) -> None:
    """Each send mode of the 0.4.4 API delivers tags, keys, user properties and bodies intact."""
    if mode == "batch" and not cpp_client.get("batch"):
        pytest.skip("batch send is not supported by the rocketmq 0.4.4 client API")
    if mode == "async" and not cpp_client.get("async"):
        pytest.skip("async send is not supported by the rocketmq 0.4.4 client API")
    topic, n = unique(f"CppModes_{mode}"), 8
    items = sample_items(f"{mode}", n)
    results = produce(pocketmq, client_home, topic, unique("CppPG"), mode, items)

    if mode == "oneway":
        assert all(r["status"] == "ONEWAY" for r in results)
    else:
        assert all(r["status"] == "OK" for r in results), results
        assert all(r["queue_offset"] >= 0 for r in results), results
        if mode != "batch":  # 0.4.4 reports an empty msg_id for a batch: the batch envelope has no UNIQ_KEY
            assert all(r["msg_id"] for r in results), results
            assert len({r["msg_id"] for r in results}) == n, "message ids are not unique"

    consumer = Consumer(pocketmq, client_home, topic, unique("CppCG"), expect=n, timeout=45)
    consumers.append(consumer)
    # Batches: 0.4.4 sends them as SEND_MESSAGE (10) marked only by the extField batch="1". Java's
    # Boolean.parseBoolean("1") is false, so an Apache broker stores the whole batch as ONE message holding the
    # raw batch encoding (apache/rocketmq-client-cpp#363, #447); pocketmq reads "1" as true and must deliver
    # every message of the batch on its own.
    final = consumer.finish()
    received = by_key(consumer.messages)
    assert final["event"] == "done", f"got {len(received)}/{n}: {final}\n{consumer.explain()}"
    assert_intact(items, received, topic)
    assert len(received) == n
    if mode in ("sync", "async", "orderly"):
        # The id a send returns is the client-generated UNIQ_KEY; the broker must store it unchanged.
        sent_ids = {r["msg_id"] for r in results}
        assert {m["uniq_key"] for m in received.values()} == sent_ids
    else:  # oneway results carry no id, a batch result none per message: at least every message has its own
        assert len({m["uniq_key"] for m in received.values()}) == n
    for m in received.values():
        assert m["reconsume_times"] == 0
        assert m["queue_offset"] >= 0 and m["commit_log_offset"] >= 0


def test_compressed_batch_of_100_messages(
    pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer], cpp_client: dict[str, Any]
) -> None:
    """A batch of 100 messages of about 60 bytes each encodes to more than the client's 4 KiB compression
    threshold, so 0.4.4 sends the whole batch body zlib-compressed (sysFlag 1; the frame is in
    cpp/captured/cpp-0.4.4-send-batch-compressed.bin). pocketmq inflates it before splitting it: every message
    arrives exactly once, with body, tags, keys and properties intact."""
    if not cpp_client.get("batch"):
        pytest.skip("batch send is not supported by the rocketmq 0.4.4 client API")
    topic, n = unique("CppZipBatch"), 100
    items = sample_items("zip", n)
    bodies = [base64.b64decode(it["body"]) for it in items]
    assert all(55 <= len(b) <= 70 for b in bodies)
    assert sum(len(b) for b in bodies) > 4096  # the bodies alone exceed compressMsgBodyOverHowmuch
    results = produce(pocketmq, client_home, topic, unique("CppPG"), "batch", items)
    assert all(r["status"] == "OK" for r in results), results[:3]

    consumer = Consumer(pocketmq, client_home, topic, unique("CppCG"), expect=n, timeout=60, linger=3)
    consumers.append(consumer)
    final = consumer.finish()
    accepted = [m for m in consumer.messages if m["status"] == "CONSUME_SUCCESS"]
    received = by_key(accepted)
    assert final["event"] == "done", f"got {len(received)}/{n}: {final}\n{consumer.explain()}"
    assert_intact(items, received, topic)
    counts = Counter((m["keys"] or "").split(" ")[0] for m in accepted)
    assert sorted(counts) == sorted(it["keys"][0] for it in items)
    assert set(counts.values()) == {1}, f"delivered more than once: {[k for k, c in counts.items() if c > 1]}"
    assert len({m["uniq_key"] for m in accepted}) == n  # each message kept its own UNIQ_KEY


def test_large_and_compressed_bodies(pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer]) -> None:
    """Bodies above the 4 KiB compression threshold (client-side zlib) and a 1 MiB body arrive byte-identical."""
    topic = unique("CppBig")
    items = [
        item(text_body(5 * 1024, "compressible"), tags="big", keys=["big-text-5k"], color="c1"),
        item(body_bytes(4097, "just-over"), tags="big", keys=["big-rand-4097"], seq="2"),
        item(body_bytes(64 * 1024, "64k"), tags="big", keys=["big-rand-64k"], note="n3"),
        item(body_bytes(1024 * 1024, "one-mib"), tags="big", keys=["big-rand-1m"], color="c4"),
        item(text_body(1024 * 1024, "one-mib-text"), tags="big", keys=["big-text-1m"], seq="5"),
    ]
    results = produce(pocketmq, client_home, topic, unique("CppPG"), "sync", items)
    assert all(r["status"] == "OK" for r in results), results
    consumer = Consumer(pocketmq, client_home, topic, unique("CppCG"), expect=len(items), timeout=60)
    consumers.append(consumer)
    final = consumer.finish()
    received = by_key(consumer.messages)
    assert final["event"] == "done", f"got {sorted(received)}: {final}\n{consumer.explain()}"
    assert_intact(items, received, topic)
    for it in items:
        assert received[it["keys"][0]]["body_len"] == len(base64.b64decode(it["body"]))
    # The client zlib-compresses bodies over 4 KiB; the stored record keeps them compressed (much smaller than
    # the body for the text ones) and the consumer inflates them.
    for key in ("big-text-5k", "big-text-1m"):
        assert received[key]["store_size"] < received[key]["body_len"] / 2, received[key]["store_size"]


def test_tag_subscription(pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer]) -> None:
    """Subscription ``a || b`` gets every a- and b-tagged message and nothing else."""
    topic = unique("CppTags")
    items = [
        item(f"tagged {t} #{i}".encode(), tags=t, keys=[f"tag-{t}-{i}"], seq=str(i))
        for i in range(4)
        for t in ("a", "b", "c", "ab")
    ]
    items.append(item(b"no tag at all", tags=None, keys=["tag-none"]))
    results = produce(pocketmq, client_home, topic, unique("CppPG"), "sync", items)
    assert all(r["status"] == "OK" for r in results), results
    wanted = [it for it in items if it["tags"] in ("a", "b")]
    consumer = Consumer(pocketmq, client_home, topic, unique("CppCG"), expr="a || b", expect=len(wanted),
                        timeout=45, linger=3)  # fmt: skip
    consumers.append(consumer)
    final = consumer.finish()
    msgs = consumer.messages
    unexpected = [m["keys"] for m in msgs if m["tags"] not in ("a", "b")]
    assert not unexpected, f"messages outside 'a || b' were delivered: {unexpected}"
    assert final["event"] == "done", f"got {len(by_key(msgs))}/{len(wanted)}: {final}\n{consumer.explain()}"
    assert_intact(wanted, by_key(msgs), topic)
    assert set(by_key(msgs)) == {it["keys"][0] for it in wanted}


def test_auto_created_topic(pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer]) -> None:
    """Sending to a topic nobody created succeeds (auto-create via TBW102) and the messages are consumable."""
    topic = unique("CppAutoCreate")
    items = sample_items("auto", 4)
    results = produce(pocketmq, client_home, topic, unique("CppPG"), "sync", items)
    assert all(r["status"] == "OK" for r in results), results
    assert results[0]["queue_offset"] == 0, "the first message of a brand-new topic must be at queue offset 0"
    consumer = Consumer(pocketmq, client_home, topic, unique("CppCG"), expect=len(items), timeout=45)
    consumers.append(consumer)
    final = consumer.finish()
    received = by_key(consumer.messages)
    assert final["event"] == "done", f"got {len(received)}/{len(items)}: {final}\n{consumer.explain()}"
    assert_intact(items, received, topic)


@pytest.mark.slow
def test_consumer_group_survives_broker_restart(
    pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer]
) -> None:
    """A running consumer keeps its group's progress across a broker restart: nothing is lost."""
    topic, group = unique("CppRestart"), unique("CppCG")
    batch1 = sample_items("before", 6)
    batch2 = sample_items("after", 6)
    produce(pocketmq, client_home, topic, unique("CppPG"), "sync", batch1)

    consumer = Consumer(pocketmq, client_home, topic, group, expect=len(batch1) + len(batch2), timeout=150)
    consumers.append(consumer)
    consumer.wait_ready()
    keys1 = {it["keys"][0] for it in batch1}
    got1 = consumer.wait_until(lambda _: keys1 <= set(by_key(consumer.messages)), 45)
    assert got1, f"batch 1 not consumed before the restart: {sorted(by_key(consumer.messages))}\n" + (
        consumer.explain()
    )
    time.sleep(6)  # the C++ client persists consumed offsets every 5 s
    pocketmq.restart()

    results = produce(pocketmq, client_home, topic, unique("CppPG"), "sync", batch2, retry_for=60, timeout=150)
    assert all(r["status"] == "OK" for r in results), results
    final = consumer.finish(timeout=180)
    received = by_key(consumer.messages)
    assert final["event"] == "done", (
        f"got {len(received)}/{len(batch1) + len(batch2)}: {final}; missing "
        f"{sorted({it['keys'][0] for it in batch1 + batch2} - set(received))}\n{consumer.explain()}"
    )
    assert_intact(batch1 + batch2, received, topic)


def test_driver_fails_cleanly_without_server(tmp_path: Path) -> None:
    """Sanity check of the driver itself: a producer against a closed port fails fast, without hanging."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([item(b"x", keys=["k"])]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        cmd = [sys.executable, str(DRIVER), "--namesrv", f"127.0.0.1:{port}", "--log-dir", str(tmp_path),
               "produce", "--topic", "T", "--group", unique("CppPG"), "--spec", str(spec),
               "--send-timeout-ms", "1000"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.strip()]
    assert proc.returncode == 1
    assert [ln["event"] for ln in lines] == ["started", "error", "done"]
    assert lines[-1] == {"event": "done", "sent": 0, "failed": 1}


@pytest.mark.slow
def test_reconsume_later_redelivers(pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer]) -> None:
    """RECONSUME_LATER: the client sends each message back (CONSUMER_SEND_MSG_BACK, 36); it returns through
    ``%RETRY%<group>`` after delay level 3 (10 s) with reconsume times 1, still intact."""
    topic = unique("CppRetry")
    items = sample_items("retry", 3)
    results = produce(pocketmq, client_home, topic, unique("CppPG"), "sync", items)
    assert all(r["status"] == "OK" for r in results), results
    consumer = Consumer(pocketmq, client_home, topic, unique("CppCG"), expect=len(items), timeout=25, reconsume=1)
    consumers.append(consumer)
    final = consumer.finish()
    received = by_key(consumer.messages)
    first = {m["keys"].split(" ")[0] for m in consumer.messages if m["status"] == "RECONSUME_LATER"}
    assert first == {it["keys"][0] for it in items}, "every message is first delivered and refused"
    assert final["event"] == "done", f"redelivered {sorted(received)} of {sorted(first)}: {final}\n{consumer.explain()}"
    assert_intact(items, received, topic)
    for m in received.values():
        assert m["reconsume_times"] == 1, m
        assert m["recv_ms"] - m["born_timestamp"] >= 9000, "redelivered before the 10 s of delay level 3"


def test_delay_level(pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer]) -> None:
    """A message with delay level 1 (1 s) arrives intact, and not before its delay."""
    topic = unique("CppDelay")
    items = [dict(it, delay_level=1) for it in sample_items("delay", 2)]
    results = produce(pocketmq, client_home, topic, unique("CppPG"), "sync", items)
    assert all(r["status"] == "OK" for r in results), results
    consumer = Consumer(pocketmq, client_home, topic, unique("CppCG"), expect=len(items), timeout=30)
    consumers.append(consumer)
    final = consumer.finish()
    received = by_key(consumer.messages)
    assert final["event"] == "done", f"got {len(received)}/{len(items)}: {final}\n{consumer.explain()}"
    assert_intact(items, received, topic)
    for m in received.values():
        assert m["recv_ms"] - m["born_timestamp"] >= 900, "delivered before its 1 s delay"


def test_orderly_send_and_orderly_consume(pocketmq: PocketMQ, client_home: Path, consumers: list[Consumer]) -> None:
    """send_orderly with one sharding argument puts every message in one queue; an orderly push consumer
    (LOCK_BATCH_MQ, 41) gets them in send order."""
    topic = unique("CppOrderly")
    items = sample_items("ord", 10)
    results = produce(pocketmq, client_home, topic, unique("CppPG"), "orderly", items)
    assert all(r["status"] == "OK" for r in results), results
    offsets = [r["queue_offset"] for r in results]
    assert offsets == list(range(offsets[0], offsets[0] + len(items))), f"not one queue, in order: {offsets}"
    consumer = Consumer(pocketmq, client_home, topic, unique("CppCG"), expect=len(items), timeout=20, orderly=True)
    consumers.append(consumer)
    final = consumer.finish()
    received = by_key(consumer.messages)
    assert final["event"] == "done", f"got {len(received)}/{len(items)}: {final}\n{consumer.explain()}"
    assert_intact(items, received, topic)
    assert len({m["queue_id"] for m in received.values()}) == 1
    order: list[str] = []
    for m in consumer.messages:
        key = m["keys"].split(" ")[0]
        if key not in order:
            order.append(key)
    assert order == [it["keys"][0] for it in items], "orderly consumption out of send order"

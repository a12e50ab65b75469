"""Delayed-message benchmark: delivery lateness and memory with many pending messages. Prints numbers only.

    python bench/delay_bench.py [--messages 2000] [--spread-s 5] [--pending 1000000]

1. lateness: a ``pocketmq up`` subprocess; N messages with ``TIMER_DELIVER_MS`` spread over the next few seconds
   (plus some with delay level 1) are sent over several connections; one consumer connection long-polls every
   queue; for each message, lateness = time it was received - its due time. Prints p50/p99/max in ms.
2. pending: a store filled directly with P messages scheduled days ahead (as SCHEDULE_TOPIC records in the
   due-time index, exactly what sends with a delay store), then ``pocketmq up`` on it: start-up time, RSS with
   P pending vs. an empty store, and a few short-delay messages sent and delivered on time meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codec.codes import PullSysFlag, RequestCode  # noqa: E402
from codec.command import request  # noqa: E402
from codec.headers import SendMessageRequestHeader, encode_send_header_v2  # noqa: E402
from codec.properties import decode_properties, encode_properties  # noqa: E402
from codec.record import StoredMessage, decode_records, encode_record  # noqa: E402
from compat_tests.harness import free_port  # noqa: E402
from remoting.client import RemotingClient  # noqa: E402
from store.api import AppendRequest  # noqa: E402
from store.sqlite import SqliteStore  # noqa: E402

TOPIC = "DelayBench"
QUEUES = 4


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], int, float]:
    ns, broker = free_port(), free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pocketmq", "--log-level", "WARNING", "up", "--data-dir", str(data_dir),
         "--namesrv-port", str(ns), "--broker-port", str(broker)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    while not proc.stdout.readline().startswith("namesrvAddr="):
        pass
    return proc, broker, time.monotonic() - started


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=30)
    if proc.stdout:
        proc.stdout.close()


def send_header(queue_id: int, props: dict[str, str]) -> dict[str, str]:
    return encode_send_header_v2(
        SendMessageRequestHeader(
            producer_group="bench", topic=TOPIC, default_topic="TBW102", default_topic_queue_nums=QUEUES,
            queue_id=queue_id, sys_flag=0, born_timestamp=int(time.time() * 1000), flag=0,
            properties=encode_properties(props),
        )
    )  # fmt: skip


async def send_all(port: int, items: list[tuple[int, dict[str, str]]], connections: int = 8) -> None:
    chunks = [items[i::connections] for i in range(connections)]

    async def run(chunk: list[tuple[int, dict[str, str]]]) -> None:
        client = await RemotingClient.connect("127.0.0.1", port)
        for i, props in chunk:
            r = await client.invoke(request(RequestCode.SEND_MESSAGE_V2, send_header(i % QUEUES, props), b"x" * 256))
            assert r.code == 0, r.remark
        await client.aclose()

    await asyncio.gather(*(run(c) for c in chunks))


async def consume(port: int, expected: int, timeout_s: float) -> tuple[list[float], list[float]]:
    """Long-poll every queue; return each message's lateness (ms) as received, and as handed over (its store
    timestamp in the real queue minus its due time: when it became pullable)."""
    client = await RemotingClient.connect("127.0.0.1", port)
    lateness: list[float] = []
    handed: list[float] = []
    offsets = dict.fromkeys(range(QUEUES), 0)
    deadline = time.monotonic() + timeout_s

    async def poll(q: int) -> None:
        while len(lateness) < expected and time.monotonic() < deadline:
            ext = {"consumerGroup": "bench", "topic": TOPIC, "queueId": str(q), "queueOffset": str(offsets[q]),
                   "maxMsgNums": "32", "sysFlag": str(int(PullSysFlag.SUSPEND)), "commitOffset": "0",
                   "suspendTimeoutMillis": "2000", "subVersion": "0"}  # fmt: skip
            r = await pull_client[q].invoke(request(RequestCode.PULL_MESSAGE, ext), timeout=5)
            now = time.time() * 1000
            offsets[q] = int(r.ext_fields.get("nextBeginOffset", offsets[q]))
            if r.code == 0:
                for m in decode_records(r.body):
                    due = int(decode_properties(m.properties)["DUE"])
                    lateness.append(now - due)
                    handed.append(m.store_timestamp - due)

    pull_client = {q: await RemotingClient.connect("127.0.0.1", port) for q in range(QUEUES)}
    await asyncio.gather(*(poll(q) for q in range(QUEUES)))
    for c in [client, *pull_client.values()]:
        await c.aclose()
    return lateness, handed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def lateness_run(messages: int, spread_s: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, _ = start_server(Path(tmp) / "data")
        try:
            # Create the topic first so the consumer can poll from the start.
            await send_all(port, [(0, {"DUE": str(int(time.time() * 1000))})], connections=1)
            base = time.time() * 1000 + 1500
            items = []
            for i in range(messages):
                due = int(base + random.random() * spread_s * 1000)
                items.append((i, {"TIMER_DELIVER_MS": str(due), "DUE": str(due)}))
            consumer = asyncio.create_task(consume(port, messages + 1, spread_s + 30))
            t0 = time.monotonic()
            await send_all(port, items)
            send_s = time.monotonic() - t0
            received, handed = await consumer
            print(f"lateness of {len(received) - 1} of {messages} timer messages (sent in {send_s:.1f} s, due over "
                  f"{spread_s:.0f} s, received by long polling):")  # fmt: skip
            for label, values in (("became pullable", handed[1:]), ("received", received[1:])):
                if values:
                    early = sum(1 for v in values if v < 0)
                    p50, p99, worst = percentile(values, 50), percentile(values, 99), max(values)
                    print(f"  {label:>15}: p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {worst:.1f} ms  "
                          f"mean {statistics.mean(values):.1f} ms  early {early}")  # fmt: skip
        finally:
            stop_server(proc)


async def fill_pending(data_dir: Path, pending: int) -> float:
    store = SqliteStore(data_dir / "store.db")
    await store.open()
    t0 = time.monotonic()
    far = int(time.time() * 1000) + 7 * 86_400_000
    batch = 2000
    for start in range(0, pending, batch):
        requests = []
        for i in range(start, min(start + batch, pending)):
            props = f"REAL_TOPIC\x01{TOPIC}\x02REAL_QID\x01{i % QUEUES}\x02DELAY\x0118\x02"
            msg = StoredMessage(topic="SCHEDULE_TOPIC_XXXX", queue_id=17, body=b"p" * 100, properties=props,
                                store_timestamp=far - 1)  # fmt: skip
            requests.append(AppendRequest("SCHEDULE_TOPIC_XXXX", 17, encode_record(msg), 0, (), far - 1,
                                          due_ms=far + i))  # fmt: skip
        await store.append(requests)
    await store.close()
    return time.monotonic() - t0


async def pending_run(pending: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        empty_proc, _, empty_start = start_server(Path(tmp) / "empty")
        await asyncio.sleep(1)
        empty_rss = rss_kib(empty_proc.pid)
        stop_server(empty_proc)

        data = Path(tmp) / "full"
        data.mkdir()
        fill_s = await fill_pending(data, pending)
        proc, port, start_s = start_server(data)
        try:
            await asyncio.sleep(1)
            idle_rss = rss_kib(proc.pid)
            now = time.time() * 1000
            items = [(i, {"TIMER_DELAY_MS": "500", "DUE": str(int(now + 500))}) for i in range(20)]
            consumer = asyncio.create_task(consume(port, 20, 20))
            await send_all(port, items, connections=4)
            lateness, _ = await consumer
            loaded_rss = rss_kib(proc.pid)
            print(f"pending: {pending:,} scheduled messages (filled in {fill_s:.1f} s)")
            print(f"  start-up {start_s * 1000:.0f} ms (empty store {empty_start * 1000:.0f} ms)")
            print(f"  RSS {idle_rss / 1024:.1f} MiB with them pending, {empty_rss / 1024:.1f} MiB with an empty store; "
                  f"{loaded_rss / 1024:.1f} MiB after delivering 20 more")  # fmt: skip
            if lateness:
                print(f"  20 short-delay messages delivered meanwhile: max lateness {max(lateness):.1f} ms")
            db = data / "store.db"
            print(f"  database {db.stat().st_size / 2**20:.0f} MiB")
        finally:
            stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--spread-s", type=float, default=5.0)
    parser.add_argument("--pending", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    asyncio.run(lateness_run(args.messages, args.spread_s))
    if args.pending:
        asyncio.run(pending_run(args.pending))


if __name__ == "__main__":
    main()

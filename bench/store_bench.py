"""Store throughput: appends/s of 1 KiB records with 1, 16 and 64 concurrent appenders, then read_queue.

Each appender awaits one single-message append at a time, like a producer connection waiting for its
SEND_MESSAGE answer, so throughput comes from group commit. Every message carries one key (its UNIQ_KEY),
as the broker stores them. Prints numbers only.

    python bench/store_bench.py [--seconds 3] [--sync-flush]
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from codec.record import StoredMessage, encode_record
from store.api import AppendRequest
from store.sqlite import SqliteStore

RECORD_SIZE = 1024
TOPIC = "BenchTopic"
QUEUES = 8
PULL_BATCH = 32  # the default pullBatchSize of RocketMQ consumers


def _template() -> bytearray:
    empty = encode_record(StoredMessage(topic=TOPIC, queue_id=0, body=b""))
    body = b"x" * (RECORD_SIZE - len(empty))
    record = encode_record(StoredMessage(topic=TOPIC, queue_id=0, body=body))
    assert len(record) == RECORD_SIZE
    return record


async def bench_appends(path: pathlib.Path, concurrency: int, seconds: float, sync_flush: bool) -> None:
    template = _template()
    store = SqliteStore(path, sync_flush=sync_flush)
    await store.open()
    deadline = time.perf_counter() + seconds
    count = 0

    async def appender(n: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < deadline:
            now = int(time.time() * 1000)
            key = f"{n:04X}{i:012X}"
            await store.append([AppendRequest(TOPIC, n % QUEUES, bytearray(template), 0, (key,), now)])
            count += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(appender(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    transactions = store.transactions_committed
    await store.close()
    print(
        f"append  concurrency={concurrency:<3} {count / elapsed:>9,.0f} msg/s"
        f"  {count:>7} msgs  {transactions:>6} transactions ({count / max(transactions, 1):.1f} msg/txn)"
    )


async def bench_reads(path: pathlib.Path) -> None:
    started = time.perf_counter()
    store = SqliteStore(path)
    await store.open()
    total = sum(store.max_offset(TOPIC, q) for q in range(QUEUES))
    print(f"reopen  {time.perf_counter() - started:.3f} s with {total:,} messages")
    read = 0
    started = time.perf_counter()
    for queue_id in range(QUEUES):
        offset = 0
        while entries := await store.read_queue(TOPIC, queue_id, offset, PULL_BATCH):
            read += len(entries)
            offset = entries[-1].queue_offset + 1
    elapsed = time.perf_counter() - started
    await store.close()
    print(
        f"read_queue batch={PULL_BATCH}  {read / elapsed:>9,.0f} msg/s  "
        f"{read * RECORD_SIZE / elapsed / 2**20:.0f} MiB/s  ({read:,} msgs)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each append run")
    parser.add_argument("--sync-flush", action="store_true", help="synchronous=FULL instead of NORMAL")
    args = parser.parse_args()
    print(f"sqlite store, {RECORD_SIZE}-byte records, sync_flush={args.sync_flush}")
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        for concurrency in (1, 16, 64):
            path = pathlib.Path(tmp) / f"c{concurrency}.db"
            await bench_appends(path, concurrency, args.seconds, args.sync_flush)
        await bench_reads(path)


if __name__ == "__main__":
    asyncio.run(main())

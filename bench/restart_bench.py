"""Restart benchmark: how long ``pocketmq up`` takes to accept a send when its store already holds many messages.

    python bench/restart_bench.py [--messages 2000000] [--data-dir DIR] [--rebuild] [--runs 3] [--cold]
    python bench/restart_bench.py --code-root /path/to/other/checkout   # the same store, another version's code

1. Builds (once; kept in ``--data-dir`` for re-runs) a store of ``--messages`` 1 KiB messages spread round-robin
   over ``--topics`` x ``--queues`` queues, each with its UNIQ_KEY in the key index, as the broker would store
   them: records encoded with ``codec.record.encode_record`` and ``set_offsets``, written with plain ``sqlite3``
   ``executemany`` into the schema the store itself created (journal off while building, for speed).
2. Times ``SqliteStore.open()`` alone, in a subprocess running the code under ``--code-root``.
3. Spawns ``python -m pocketmq up`` (cwd ``--code-root``) and times spawn -> first SEND_MESSAGE_V2 answered
   SUCCESS, going through the name server like a starting producer (the probe of bench/run.py), then reads the
   server's RSS.

Prints numbers only; no assertions. ``--cold`` drops the OS page cache before each timing (root only), so
start-up includes reading the store (and the interpreter's own modules) from disk; it drops the cache of the whole
machine, so other processes slow down for a moment too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

BENCH_DIR = pathlib.Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(BENCH_DIR))

import run  # noqa: E402  (bench/run.py: the start-up probe and process helpers)

from codec.record import StoredMessage, encode_record, set_offsets  # noqa: E402
from codec.tags import tags_code  # noqa: E402
from store.chunks import pack_index  # noqa: E402
from store.sqlite import INSERT_CHUNK, INSERT_KEY, SAVE_TOPIC, SqliteStore  # noqa: E402

CHUNK = 64  # messages per chunk while building (a batch send of 64 per queue)
T0_MS = 1_700_000_000_000

# Run in a subprocess under --code-root, so the open time is that checkout's.
_OPEN_ONLY = """
import asyncio, pathlib, sys, time
from store.sqlite import SqliteStore

async def main() -> None:
    store = SqliteStore(pathlib.Path(sys.argv[1]))
    t0 = time.perf_counter()
    await store.open()
    opened = time.perf_counter() - t0
    await store.close()
    print(opened)

asyncio.run(main())
"""


class Server(run.Server):
    """bench/run.py's server process, spawned from another checkout's directory (``python -m`` imports from cwd)."""

    def __init__(self, data_dir: pathlib.Path, code_root: pathlib.Path) -> None:
        super().__init__(data_dir, None)
        self.code_root = code_root

    def start(self) -> float:
        self.log = open(self.data_dir / "server.log", "w")  # noqa: SIM115
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, cwd=self.code_root, stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        return t0


def store_files(db: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")) if p.exists()]


def build(db: pathlib.Path, messages: int, topics: int, queues: int, body_size: int) -> float:
    """Create the store's schema with the store itself, then fill it with plain sqlite3; return seconds taken."""
    for path in store_files(db):
        path.unlink()
    db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    async def create_schema() -> None:
        store = SqliteStore(db)
        await store.open()
        await store.close()

    asyncio.run(create_schema())
    names = [f"RestartBench{t}" for t in range(topics)]
    key_prefix = f"7F000001{os.getpid() & 0xFFFF:04X}{int.from_bytes(os.urandom(4)) & 0x7FFFFFFF:08X}"
    filler = os.urandom(body_size)
    code = tags_code("TagA")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")  # a one-off build: a crash here just means --rebuild
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")  # 256 MiB: the indexes' hot pages stay cached
    conn.executemany(SAVE_TOPIC, [(name, queues, queues, 6, "SINGLE_TAG", 0, 0) for name in names])
    phys = 0
    slots = topics * queues
    next_offset = [0] * slots
    done = 0
    while done < messages:
        # Like a group commit of batch sends: a chunk of up to CHUNK messages per queue, physical offsets contiguous.
        chunks, keys = [], []
        for slot in range(slots):
            topic, queue_id = names[slot // queues], slot % queues
            records, index, first_phys, first_offset, size = [], [], phys, next_offset[slot], 0
            for _ in range(min(CHUNK, messages - done)):
                i = done
                offset = next_offset[slot]
                next_offset[slot] += 1
                uniq = f"{key_prefix}{i:012X}"
                ts = T0_MS + i // 100
                body = i.to_bytes(8, "big") + filler[8:]
                record = encode_record(
                    StoredMessage(
                        topic=topic, queue_id=queue_id, body=body,
                        properties=f"TAGS\x01TagA\x02UNIQ_KEY\x01{uniq}\x02", born_timestamp=ts, store_timestamp=ts,
                    )
                )  # fmt: skip
                set_offsets(record, offset, phys)
                records.append(record)
                size += len(record)
                index.append((size, code, ts))
                keys.append((topic, uniq, ts, phys))
                phys += len(record)
                done += 1
            if records:
                chunks.append((first_phys, topic, queue_id, first_offset, pack_index(index), b"".join(records)))
        conn.execute("BEGIN")
        conn.executemany(INSERT_CHUNK, chunks)
        conn.executemany(INSERT_KEY, keys)
        conn.execute("COMMIT")
        if done % 200_000 < CHUNK * slots:
            print(f"   built {done:,} / {messages:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    return time.perf_counter() - t0


def drop_caches() -> None:
    os.sync()
    pathlib.Path("/proc/sys/vm/drop_caches").write_text("3\n")


def open_time(db: pathlib.Path, code_root: pathlib.Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _OPEN_ONLY, str(db)], cwd=code_root, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def start_up(data_dir: pathlib.Path, code_root: pathlib.Path) -> tuple[float, float | None, dict[str, int]]:
    """(spawn -> first SUCCESS send, spawn -> ready line or None, RSS) of one ``pocketmq up``."""
    server = Server(data_dir, code_root)
    try:
        t_spawn = server.start()
        t_first, _ = asyncio.run(run.first_send(server, deadline_s=300.0))
        rss = run.proc_status(server.pid)
        ready = server.ready_at - t_spawn if server.ready_at else None
        return t_first - t_spawn, ready, rss
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=2_000_000)
    p.add_argument("--topics", type=int, default=8)
    p.add_argument("--queues", type=int, default=4, help="queues per topic")
    p.add_argument("--body-size", type=int, default=1024)
    p.add_argument("--data-dir", type=pathlib.Path, default=pathlib.Path("/tmp/pocketmq-restart-bench"))
    p.add_argument("--rebuild", action="store_true", help="build the store even if one of this shape exists")
    p.add_argument("--runs", type=int, default=3, help="timed start-ups (and open()s)")
    p.add_argument("--cold", action="store_true", help="drop the OS page cache before each timing (root)")
    p.add_argument("--code-root", type=pathlib.Path, default=ROOT, help="checkout whose code runs (default: this)")
    args = p.parse_args()

    data_dir = args.data_dir.resolve()
    db = data_dir / "store" / "store.db"  # run.Server passes <data dir>/store as --data-dir
    shape = {"messages": args.messages, "topics": args.topics, "queues": args.queues, "body_size": args.body_size}
    meta = data_dir / "bench.json"
    print(f"pocketmq restart benchmark; machine: {run.machine()}")
    if args.rebuild or not meta.exists() or json.loads(meta.read_text()) != shape or not db.exists():
        meta.unlink(missing_ok=True)
        print(f"building {args.messages:,} messages of {args.body_size} B in {args.topics} x {args.queues} queues")
        seconds = build(db, **shape)
        meta.write_text(json.dumps(shape))
        print(f"build: {seconds:.1f} s ({args.messages / seconds:,.0f} msgs/s)")
    else:
        print(f"reusing the store in {data_dir} ({args.messages:,} messages); --rebuild to build it again")
    size = sum(path.stat().st_size for path in store_files(db))
    print(f"store: {db} {size / 2**30:.2f} GiB ({size:,} bytes)")
    print(f"code:  {args.code_root.resolve()} ({run.code_version() if args.code_root == ROOT else 'other checkout'})")

    opens, firsts = [], []
    for i in range(args.runs):
        if args.cold:
            drop_caches()
        opens.append(open_time(db, args.code_root))
        if args.cold:
            drop_caches()
        first, ready, rss = start_up(data_dir, args.code_root)
        firsts.append(first)
        ready_text = f"{ready:.3f} s" if ready is not None else "n/a"
        print(
            f"run {i + 1}: SqliteStore.open() {opens[-1]:.3f} s; spawn -> first SUCCESS send {first:.3f} s"
            f" (ready line at {ready_text}); RSS after it {run.mib(rss['VmRSS'])}, peak {run.mib(rss['VmHWM'])}"
        )
    cache = "cold page cache" if args.cold else "warm page cache"
    print(
        f"median of {args.runs} ({cache}): open() {statistics.median(opens):.3f} s,"
        f" start-up to first accepted send {statistics.median(firsts):.3f} s"
    )


if __name__ == "__main__":
    main()

"""Retention under load: many messages through a broker that keeps only the last few seconds of them; does the
store stay flat? pocketmq and the stock Apache RocketMQ 5.3.3 broker side by side, same machine, same run, same
load generator (the stock Java client, bench/java-loadgen, ``fill``: batches of 64 from 8 threads). Prints numbers
only, no assertions.

    python bench/retention.py                          # 10 M messages of 256 bytes through each
    python bench/retention.py --messages 2000000 --only pocketmq

Both brokers delete at every hour (``deleteWhen`` lists all 24) and look every second (``cleanResourceInterval``).
pocketmq keeps ``--reserved-hours`` (default 0.005 h = 18 s); Apache takes whole hours only, so it gets
``fileReservedTime=0``: a commit-log file goes as soon as it is full, so it keeps its current 64 MiB file
(``mappedFileSizeCommitLog``) and whatever it has not deleted yet. While the load runs, the store's size on disk
(pocketmq: the database and its WAL; Apache: the store directory) is sampled every second; the table gives it at
each tenth of the run and its maximum over the second half.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare

ALL_HOURS = ";".join(f"{h:02d}" for h in range(24))


class SizeSampler:
    """The store's size on disk every ``interval`` seconds, in a thread, while the load runs."""

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path, self.interval = path, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.wait(self.interval):
            self.samples.append((time.perf_counter() - t0, compare.disk_usage(self.path)))

    def __enter__(self) -> SizeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(kind: str, args: argparse.Namespace, java: str, loadgen_cp: str, apache_cp: str, tmp: Path) -> dict:
    work = tmp / kind
    if kind == "apache":
        server: compare.Server = compare.ApacheServer(work, java, apache_cp)
        server.broker_conf = {
            "fileReservedTime": "0", "deleteWhen": ALL_HOURS, "cleanResourceInterval": "1000",
            "mappedFileSizeCommitLog": str(64 * 1024 * 1024), "diskMaxUsedSpaceRatio": "95",
        }  # fmt: skip
    else:
        server = compare.PocketmqServer(work, Path(__file__).resolve().parents[1])
        server.broker_conf = {
            "fileReservedTime": str(args.reserved_hours), "deleteWhen": ALL_HOURS, "cleanResourceInterval": "1000",
            "diskMaxUsedSpaceRatio": "95",
        }  # fmt: skip
    print(f"\n{compare.LABEL[kind]}: starting", flush=True)
    server.start()
    try:
        fill_args = ["--topic", "Retained", "--group", "bench_retention", "--messages", str(args.messages)]
        fill_args += ["--batch", "64", "--threads", "8", "--body", str(args.body), "--timeout", str(args.timeout)]
        with SizeSampler(server.store_dir) as sizes:
            fill = compare.run_loadgen(java, loadgen_cp, server, "fill", fill_args, args.timeout + 120)
        time.sleep(3)
        after = compare.disk_usage(server.store_dir)
        alive = server.alive()
    finally:
        server.stop()
    if fill.error:
        print(f"  {fill.error}\n{server.logs()}")
    result = {
        "kind": kind, "msgs": fill.msgs, "rate": fill.rate, "cpu_us": fill.cpu_us_per_msg, "samples": sizes.samples,
        "after": after, "alive": alive, "error": fill.error,
    }  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return result


def describe(r: dict) -> list[str]:
    samples = r["samples"]
    if not samples:
        return [f"{compare.LABEL[r['kind']]}: no samples ({r['error']})"]
    end = samples[-1][0]
    tenths = []
    for k in range(1, 11):
        at = [size for t, size in samples if t <= end * k / 10]
        tenths.append(at[-1] if at else 0)
    second_half = [size for t, size in samples if t >= end / 2]
    return [
        f"| {compare.LABEL[r['kind']]} | {r['msgs']:,} | {r['rate']:,.0f} | "
        + " | ".join(f"{s / 1048576:,.0f}" for s in tenths)
        + f" | {max(second_half) / 1048576:,.0f} | {r['after'] / 1048576:,.0f} |"
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=10_000_000)
    p.add_argument("--body", type=int, default=256)
    p.add_argument("--reserved-hours", type=float, default=0.005, help="pocketmq's fileReservedTime")
    p.add_argument("--only", choices=["pocketmq", "apache"])
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args()
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None or mvn is None:
        raise SystemExit("java and mvn are needed (the load generator and the Apache servers are Java)")
    kinds = [args.only] if args.only else ["pocketmq", "apache"]
    loadgen_cp = compare.build_loadgen(mvn)
    apache_cp = compare.build_classpath(mvn) if "apache" in kinds else ""
    tmp = Path(tempfile.mkdtemp(prefix="pocketmq-retention-"))
    print(f"machine: {compare.machine(java)}\npocketmq: {compare.code_revision(Path(__file__).resolve().parents[1])}")
    print(f"{args.messages:,} messages of {args.body} bytes; pocketmq keeps {args.reserved_hours} h, Apache 0 h")
    try:
        results = [run(kind, args, java, loadgen_cp, apache_cp, tmp) for kind in kinds]
    finally:
        compare.stop_everything()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nstore size on disk (MiB) at each tenth of the fill, its maximum over the second half, 3 s after")
    print("| server | messages | msgs/s | " + " | ".join(f"{k}0 %" for k in range(1, 11)) + " | max 2nd half | after |")
    print("|---" * 15 + "|")
    for r in results:
        for line in describe(r):
            print(line)


if __name__ == "__main__":
    main()

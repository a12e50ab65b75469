"""Soak ``pocketmq up`` with hostile and greedy clients and print what it cost. No assertions: numbers only.

    python bench/soak.py [--frames 1000000] [--connections 10000] [--slow 20] [--greedy 20] [--workers 2]

Phases, against one server on loopback (a fresh data dir, default limits):

1. idle RSS;
2. ``--connections`` clients connect, each asks GET_MAX_OFFSET once and stays connected: RSS with all of them;
   then they leave, and RSS after;
3. the campaign, all at once: ``--frames`` malformed frames from ``--workers`` processes (bench/hostile.py:
   garbage, broken lengths, deep JSON, unstorable text, broken binary headers, random requests, garbage after a
   valid request) on both ports, ``--slow`` slow writers each holding 15 MiB of a 16 MiB frame and trickling,
   ``--greedy`` never-readers each pipelining 6,000 pulls, and one well-behaved client sending and pulling on
   its own connection; peak RSS, frames/s, what the victim saw;
4. RSS once the campaign is over, whether the server is alive, and what its log holds.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.hostile import Tally, Victim, blaster, never_reader, rss_kib, sample_rss, slow_writer  # noqa: E402
from codec.codes import RequestCode  # noqa: E402
from codec.command import request  # noqa: E402
from codec.frame import FrameDecoder, encode_frame  # noqa: E402
from compat_tests.harness import free_port  # noqa: E402


def raise_fd_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start_server(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    ns_port, broker_port = free_port(), free_port()
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pocketmq", "up", "--data-dir", str(data_dir),
             "--namesrv-port", str(ns_port), "--broker-port", str(broker_port)],
            stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=ROOT,
        )  # fmt: skip
    assert proc.stdout is not None
    line = ""
    while not line.startswith("namesrvAddr="):
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"pocketmq did not start; see {log_path}")
    return proc, ns_port, broker_port


async def many_connections(port: int, count: int, pid: int) -> tuple[int, int, float]:
    """Open ``count`` connections that each get one answer and stay open; returns (answered, RSS KiB, seconds)."""
    started = time.perf_counter()
    writers = []
    answered = 0
    frame = encode_frame(request(RequestCode.GET_MAX_OFFSET, {"topic": "SoakTopic", "queueId": "0"}))

    async def one() -> None:
        nonlocal answered
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        writers.append(writer)
        writer.write(frame)
        decoder = FrameDecoder()
        try:
            async with asyncio.timeout(30):
                while not decoder.feed(await reader.read(4096)):
                    pass
            answered += 1
        except (OSError, TimeoutError):
            pass

    for start in range(0, count, 500):
        await asyncio.gather(*(one() for _ in range(min(500, count - start))))
    elapsed = time.perf_counter() - started
    rss = rss_kib(pid)
    for writer in writers:
        writer.close()
    await asyncio.sleep(2)
    return answered, rss, elapsed


def blast_worker(args: tuple[int, int, int, int]) -> tuple[int, int]:
    port_a, port_b, frames, seed = args
    tally = Tally()

    async def run() -> None:
        rng = random.Random(seed)
        await asyncio.gather(*(blaster("127.0.0.1", port, random.Random(rng.random()), frames // 8, tally)
                               for port in (port_a, port_b) * 4))  # fmt: skip

    asyncio.run(run())
    return tally.frames, tally.connections


async def campaign(pid: int, ns_port: int, broker_port: int, args: argparse.Namespace) -> dict[str, object]:
    peak = [0]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, peak, stop))
    victim = Victim("127.0.0.1", broker_port)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    per_worker = args.frames // args.workers
    with multiprocessing.Pool(args.workers) as pool:
        blasting = loop.run_in_executor(
            None, pool.map, blast_worker, [(broker_port, ns_port, per_worker, i) for i in range(args.workers)]
        )
        victim_task = asyncio.create_task(victim.run(3600))
        slow = asyncio.gather(*(slow_writer("127.0.0.1", broker_port, 16 * 1024 * 1024, 15 * 1024 * 1024, 90)
                                for _ in range(args.slow)))  # fmt: skip
        greedy = asyncio.gather(*(never_reader("127.0.0.1", broker_port, 6000, 1024, 60)
                                  for _ in range(args.greedy)))  # fmt: skip
        totals = await blasting
        blast_s = time.perf_counter() - started
        slow_closed = await slow
        greedy_taken = await greedy
    victim_task.cancel()
    stop.set()
    await sampler
    return {
        "frames": sum(t[0] for t in totals),
        "connections": sum(t[1] for t in totals),
        "blast_s": blast_s,
        "peak_kib": peak[0],
        "slow_closed": sum(slow_closed),
        "greedy_max_taken": max(greedy_taken, default=0),
        "victim_rounds": victim.rounds,
        "victim_errors": victim.errors[:5],
        "victim_error_count": len(victim.errors),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=1_000_000)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--slow", type=int, default=20)
    p.add_argument("--greedy", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep the data dir and the server log")
    args = p.parse_args()
    fds = raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="pocketmq-soak-"))
    log_path = work / "server.log"
    proc, ns_port, broker_port = start_server(work / "data", log_path)
    print(f"pocketmq soak, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; open-file limit {fds}")
    try:
        time.sleep(1)
        print(f"1. idle RSS: {rss_kib(proc.pid) / 1024:.1f} MiB")
        answered, rss, secs = asyncio.run(many_connections(broker_port, args.connections, proc.pid))
        print(
            f"2. {args.connections} connections: {answered} answered in {secs:.1f} s; RSS with all open "
            f"{rss / 1024:.1f} MiB, after they left {rss_kib(proc.pid) / 1024:.1f} MiB"
        )
        result = asyncio.run(campaign(proc.pid, ns_port, broker_port, args))
        time.sleep(3)
        alive = proc.poll() is None
        print(
            f"3. campaign: {result['frames']:,} malformed frames over {result['connections']:,} connections in "
            f"{result['blast_s']:.0f} s ({result['frames'] / result['blast_s']:,.0f} frames/s); "
            f"{args.slow} slow writers (15 of 16 MiB each), {result['slow_closed']} cut off by the frame "
            f"timeout; {args.greedy} never-readers, the most any got in before the server stopped reading it: "
            f"{result['greedy_max_taken'] / 1024:,.0f} KiB"
        )
        print(
            f"   peak RSS during the campaign {result['peak_kib'] / 1024:.1f} MiB; well-behaved client: "
            f"{result['victim_rounds']} send+pull rounds, {result['victim_error_count']} errors "
            f"{result['victim_errors']}"
        )
        print(f"4. after: server {'alive' if alive else 'DEAD'}, RSS {rss_kib(proc.pid) / 1024:.1f} MiB")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log = log_path.read_text(errors="replace")
        print(
            f"   exit status {code}; log: {len(log.splitlines())} lines, {log.count('Traceback')} tracebacks, "
            f"{log.count('were not logged')} rate-limit summaries"
        )
        if args.keep:
            print(f"   kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

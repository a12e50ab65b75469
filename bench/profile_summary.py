"""Summarise a server profile taken by ``bench/run.py --py-spy DIR`` (raw py-spy files) or ``--cprofile FILE``.

    python bench/profile_summary.py DIR/send.txt [--top 25]     # py-spy: self and inclusive shares
    python bench/profile_summary.py DIR/send.txt --buckets      # py-spy: main thread by component
    python bench/profile_summary.py server.prof [--top 25]      # cProfile: sorted by own time

py-spy shares are of the samples in which the thread was busy (py-spy leaves idle samples out), per thread.
"""

from __future__ import annotations

import argparse
import pstats
import re
import signal
from collections import Counter, defaultdict

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


def summarise_py_spy(path: str, top: int) -> None:
    per_thread: dict[str, Counter[str]] = defaultdict(Counter)
    inclusive: dict[str, Counter[str]] = defaultdict(Counter)
    modules: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            n = int(count)
            frames = stack.split(";")
            if frames[0].startswith("thread"):  # --threads puts "thread (tid): name" first
                thread = re.sub(r"\(\d+\)", "", frames[0].split(":", 1)[-1]).strip()
                frames = frames[1:]
            else:
                thread = "all threads"
            names = [_name(fr) for fr in frames]
            if not names:
                continue
            totals[thread] += n
            per_thread[thread][names[-1]] += n
            for name in set(names):
                inclusive[thread][name] += n
            leaf = names[-1]
            mod = leaf.rsplit("(", 1)[-1].rstrip(")")
            modules[thread][mod.split("/")[0] if "/" in mod else mod] += n
    for thread, total in totals.most_common():
        print(f"== thread {thread}: {total} busy samples")
        print(f"-- own time (leaf frame), top {top}")
        for name, n in per_thread[thread].most_common(top):
            print(f"{n / total:6.1%}  {name}")
        print(f"-- inclusive (frame anywhere on the stack), top {top}")
        for name, n in inclusive[thread].most_common(top):
            print(f"{n / total:6.1%}  {name}")
        print("-- own time by top-level package/file")
        for name, n in modules[thread].most_common(12):
            print(f"{n / total:6.1%}  {name}")
        print()


# --buckets: the main thread's samples split by the first matching rule (docs/performance.md uses these).
BUCKETS = [
    ("store: SQLite statements (the transaction, the reads)", ["SqliteStore._transact", "_run_steps",
                                                               "SqliteStore._read"]),
    ("pull: read + build the response (PullHandler)", ["PullHandler.", "SqliteStore.pull"]),
    ("send: batch split + record encode", ["SendHandler._batch_run", "encode_batch_records"]),
    ("send: _prepare (header decode, checks, record encode)", ["SendHandler._prepare", "decode_send_header",
                                                               "SendHandler.__call__"]),
    ("store: group commit, Python side", ["SqliteStore._commit_pending", "SqliteStore.append",
                                          "SqliteStore._stage"]),
    ("response: msgId, JSON encode, socket write", ["SendHandler._stored", "Connection._write_out",
                                                    "Connection.send (", "encode_frame", "Connection._answer",
                                                    "Connection._future_done"]),
    ("request: frame + JSON header decode", ["FrameDecoder.", "decode_json_header", "decode_command"]),
]  # fmt: skip


def buckets_py_spy(path: str) -> None:
    counts: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack.startswith("thread") or "MainThread" not in stack.split(";", 1)[0]:
                continue
            n = int(count)
            total += n
            name = next((b for b, keys in BUCKETS if any(k in stack for k in keys)), None)
            counts[name or "other: event loop, anyio/asyncio plumbing, interpreter"] += n
    print(f"== {path}: {total} main-thread samples")
    for name, n in counts.most_common():
        print(f"{n / total:6.1%}  {name}")


def summarise_cprofile(path: str, top: int) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--buckets", action="store_true", help="py-spy: main-thread samples by component")
    args = p.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # allow piping into head
    if args.buckets:
        buckets_py_spy(args.profile)
    elif args.profile.endswith(".txt"):
        summarise_py_spy(args.profile, args.top)
    else:
        summarise_cprofile(args.profile, args.top)


if __name__ == "__main__":
    main()

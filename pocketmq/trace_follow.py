"""``pocketmq trace --follow``: the live trace of a running pocketmq (GET /api/trace/recent) printed as it comes,
one readable line per frame (pocketmq.trace_print), starting with the entries it holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from pocketmq.admin_client import AdminClient
from pocketmq.trace_print import TraceFilter, format_line

POLL_S = 0.5
LIMIT = 1000  # as many as the live trace holds


def follow(api: AdminClient, wanted: TraceFilter, out: TextIO, err: TextIO, *, polls: int | None = None,
           sleep: Callable[[float], Any] = time.sleep) -> int:  # fmt: skip
    """Print new entries every ``POLL_S`` until interrupted (or ``polls`` reads); the number printed. Entries that
    fell out of the live trace between two reads are counted on ``err``."""
    after = printed = done = 0
    said_off = False
    while polls is None or done < polls:
        answer = api.get("/api/trace/recent", after=after, limit=LIMIT)
        done += 1
        if answer["seq"] < after:  # a restarted pocketmq numbers from 1 again
            after = 0
            continue
        if not answer["on"] and not said_off:
            err.write("the trace is off: pocketmq trace on (live, in memory) or pocketmq trace on FILE\n")
        said_off = not answer["on"]
        lost = answer["missed"] + answer["more"]
        if lost and after:
            err.write(f"{lost} entries missed: the live trace holds the last {answer['capacity']}\n")
        for line in answer["entries"]:
            if wanted.accepts(line):
                out.write(format_line(line) + "\n")
                printed += 1
        out.flush()
        after = answer["seq"]
        if polls is None or done < polls:
            sleep(POLL_S)
    return printed

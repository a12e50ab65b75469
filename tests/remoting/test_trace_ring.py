"""The live trace's ring: bounded, numbered, read after a number with a filter and a limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from remoting.trace import encode_line
from remoting.trace_ring import LiveFilter, TraceRing

EVERY = LiveFilter()


def entry(i: int, **fields: Any) -> dict[str, Any]:
    return {"ts": 1.0 + i, "proto": "remoting", "dir": "request", "name": "SEND_MESSAGE", "opaque": i, **fields}


def opaques(found: Any) -> list[int]:
    return [e["opaque"] for _seq, e in found.entries]


def test_the_ring_holds_only_the_newest_entries() -> None:
    ring = TraceRing(capacity=5)
    for i in range(1, 13):
        ring.put(entry(i))
    assert (len(ring), ring.seq, ring.oldest) == (5, 12, 8)
    found = ring.recent(0, 100, EVERY)
    assert opaques(found) == [8, 9, 10, 11, 12]
    assert [seq for seq, _e in found.entries] == [8, 9, 10, 11, 12]
    assert (found.seq, found.oldest, found.missed, found.more) == (12, 8, 7, 0)


def test_after_returns_only_what_came_later_and_counts_what_was_missed() -> None:
    ring = TraceRing(capacity=5)
    for i in range(1, 8):
        ring.put(entry(i))
    found = ring.recent(5, 100, EVERY)
    assert opaques(found) == [6, 7] and found.missed == 0
    assert ring.recent(7, 100, EVERY).entries == []  # nothing new
    assert ring.recent(9, 100, EVERY).entries == [] and ring.recent(9, 100, EVERY).missed == 0  # a stale reader
    for i in range(8, 15):
        ring.put(entry(i))
    found = ring.recent(7, 100, EVERY)  # 8 and 9 fell out before this read
    assert opaques(found) == [10, 11, 12, 13, 14] and found.missed == 2


def test_limit_keeps_the_newest_and_counts_the_rest() -> None:
    ring = TraceRing(capacity=10)
    for i in range(1, 11):
        ring.put(entry(i))
    found = ring.recent(2, 3, EVERY)
    assert opaques(found) == [8, 9, 10] and found.more == 5 and found.missed == 0


def test_filters() -> None:
    ring = TraceRing()
    ring.put(entry(1, topic="Orders", client="10.0.0.5@1"))
    ring.put(entry(2, topic="Payments", group="billing"))
    ring.put({"ts": 4.0, "proto": "grpc", "dir": "call", "method": "SendMessage", "topic": "Orders", "opaque": 3})
    ring.put(entry(4, dir="response", name="SYSTEM_BUSY", requestName="SEND_MESSAGE_V2", topic="Other"))
    assert opaques(ring.recent(0, 10, LiveFilter(q="orders"))) == [1, 3]
    assert opaques(ring.recent(0, 10, LiveFilter(q="orders", proto="remoting"))) == [1]
    assert opaques(ring.recent(0, 10, LiveFilter(q="BILL"))) == [2]
    assert opaques(ring.recent(0, 10, LiveFilter(q="10.0.0.5"))) == [1]
    assert opaques(ring.recent(0, 10, LiveFilter(q="sendmessage"))) == [3]
    assert opaques(ring.recent(0, 10, LiveFilter(q="SEND_MESSAGE_V2"))) == [4]  # a response by its request's name
    assert opaques(ring.recent(0, 10, LiveFilter(proto="grpc"))) == [3]
    assert opaques(ring.recent(0, 10, LiveFilter(q="nowhere"))) == []
    filtered = ring.recent(0, 1, LiveFilter(q="orders"))
    assert opaques(filtered) == [3] and filtered.more == 1  # more counts matching entries only


def test_a_ring_needs_room() -> None:
    with pytest.raises(ValueError, match="at least 1 entry"):
        TraceRing(capacity=0)


def test_entries_are_encoded_as_file_lines_with_their_number_and_left_as_they_are() -> None:
    shared = entry(7, fields={"topic": "T"})
    file_line = json.loads(encode_line(shared))
    live_line = json.loads(encode_line(shared, seq=41))
    assert "seq" not in file_line and live_line["seq"] == 41
    assert {k: v for k, v in live_line.items() if k != "seq"} == file_line
    assert file_line["time"] == "1970-01-01T00:00:08.000000Z" and "ts" not in file_line
    assert shared["ts"] == 8.0  # the writer thread and the ring share the dict: encoding must not change it

"""GET /api/trace/recent: the live trace's entries (remoting.trace_ring) after a sequence number, as JSON.

    ?after=SEQ    entries numbered above SEQ (default 0: every entry held); the answer's ``seq`` is the next SEQ
    &limit=N      at most N of them, the newest (1..1000, default 200)
    &q=TEXT       only entries with TEXT in their name, request name, gRPC method, topic, group, client, peer,
                  connection or gRPC status name (any case)
    &proto=P      only remoting or grpc entries

Answer: ``{"on", "seq", "oldest", "capacity", "missed", "more", "entries": [...]}``; each entry is a trace file
line with its ``seq``. ``missed`` counts entries after SEQ that fell out of the ring before this read, ``more``
matching ones left out by the limit.
"""

from __future__ import annotations

import orjson

from gateway.http_endpoint import JSON, HttpError, HttpRequest, HttpResponse
from remoting.trace import encode_line
from remoting.trace_ring import LIVE_ENTRIES, LiveFilter, TraceRing

DEFAULT_LIMIT = 200
MAX_QUERY_CHARS = 200
PROTOS = ("remoting", "grpc")
PARAMETERS = ("after", "limit", "q", "proto")


def _whole_number(request: HttpRequest, name: str, default: int, low: int, high: int | None, what: str) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f"{low} or more"
        raise HttpError(400, f"{name} must be a whole number {bounds} ({what}), not {text[:40]!r}")
    return value


def parse_query(request: HttpRequest) -> tuple[int, int, LiveFilter]:
    """``after``, ``limit`` and the filter, or HttpError 400 naming the parameter that is wrong."""
    unknown = sorted(set(request.query) - set(PARAMETERS))
    if unknown:
        raise HttpError(400, f"unknown parameter {unknown[0][:40]!r}; /api/trace/recent takes {', '.join(PARAMETERS)}")
    after = _whole_number(request, "after", 0, 0, None, "the seq of the last entry seen")
    limit = _whole_number(request, "limit", DEFAULT_LIMIT, 1, LIVE_ENTRIES, "entries to return")
    q = request.query.get("q", "")
    if len(q) > MAX_QUERY_CHARS:
        raise HttpError(400, f"q is {len(q)} characters, more than {MAX_QUERY_CHARS}")
    proto = request.query.get("proto") or None
    if proto is not None and proto not in PROTOS:
        raise HttpError(400, f"proto must be remoting or grpc, not {proto[:40]!r}")
    return after, limit, LiveFilter(q.strip(), proto)


def recent_response(ring: TraceRing, request: HttpRequest, on: bool) -> HttpResponse:
    after, limit, wanted = parse_query(request)
    recent = ring.recent(after, limit, wanted)
    head = {"on": on, "seq": recent.seq, "oldest": recent.oldest, "capacity": ring.capacity,
            "missed": recent.missed, "more": recent.more}  # fmt: skip
    # The entries encoded as the trace file's lines are, then spliced into the answer.
    lines = ",".join(encode_line(entry, seq) for seq, entry in recent.entries)
    body = orjson.dumps(head)[:-1] + b',"entries":[' + lines.encode() + b"]}"
    return HttpResponse(JSON, body)

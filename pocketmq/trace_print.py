"""``pocketmq trace FILE``: a protocol trace (remoting.trace) filtered and printed one readable line per frame.

    14:52:26.123456 broker  12    CPP 479 10.0.0.1@42 -> SEND_MESSAGE_V2(310) #7 topic=T group=G body=12
    14:52:26.125000 broker  12    CPP 479 10.0.0.1@42 <- SUCCESS(0) #7 for SEND_MESSAGE_V2 1.50 ms topic=T group=G
    14:52:27.000100 grpc    g3    JAVA 5.0.7 cid == SendMessage OK 3.20 ms topic=U

Lines that are not JSON objects (a line cut by a crash) are skipped and counted on stderr.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(slots=True, frozen=True)
class TraceFilter:
    code: str | None = None  # a request or response code's number or name, or a gRPC method name
    topic: str | None = None
    client: str | None = None  # client id, or a part of it

    def accepts(self, line: dict[str, Any]) -> bool:
        if self.topic is not None and line.get("topic") != self.topic:
            return False
        if self.client is not None and self.client not in str(line.get("client") or ""):
            return False
        if self.code is not None:
            wanted = self.code.upper()
            names = {str(line.get(k)).upper() for k in ("code", "name", "request", "requestName", "method")}
            if wanted not in names:
                return False
        return True


def read_lines(lines: Iterable[str]) -> Iterator[dict[str, Any] | None]:
    """Each trace line as a dict; None for a line that is not a JSON object."""
    for raw in lines:
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            yield None
            continue
        yield value if isinstance(value, dict) else None


def _clock(line: dict[str, Any]) -> str:
    text = str(line.get("time") or "")
    return text[11:26] if len(text) >= 26 else text


def _named(name: Any, code: Any) -> str:
    return f"{name}({code})" if name else str(code)


def _context(line: dict[str, Any]) -> str:
    return " ".join(f"{key}={line[key]}" for key in ("topic", "group") if line.get(key))


def format_line(line: dict[str, Any]) -> str:
    """One trace line as text."""
    head = (
        f"{_clock(line)} {line.get('server') if line.get('proto') != 'grpc' else 'grpc':<8}"
        f"{line.get('conn')!s:<5} {line.get('lang') or '?'} {line.get('ver') or '?'} {line.get('client') or '-'}"
    )
    kind = line.get("dir")
    context = _context(line)
    if kind == "request":
        oneway = " oneway" if line.get("oneway") else ""
        text = f"-> {_named(line.get('name'), line.get('code'))} #{line.get('opaque')}{oneway}"
        return " ".join(x for x in (head, text, context, f"body={line.get('body', 0)}") if x)
    if kind == "response":
        code = _named(line.get("name"), line.get("code")) if line.get("code") is not None else "NO ANSWER"
        text = f"<- {code} #{line.get('opaque')} for {line.get('requestName') or line.get('request')}"
        latency = f"{line.get('latencyMs', 0):.2f} ms"
        remark = f"remark={line['remark']!r}" if line.get("remark") else ""
        return " ".join(x for x in (head, text, latency, context, remark) if x)
    status = line.get("statusName") or line.get("status")
    if line.get("name") not in (None, "OK"):  # the v2 status the answer carried (a refusal rides on gRPC OK)
        status = f"{status}/{line['name']}"
    if line.get("fault"):
        status = f"{status} [{line['fault']}]"
    message = f"message={line['message']!r}" if line.get("message") else ""
    text = f"== {line.get('method')} {status} {line.get('latencyMs', 0):.2f} ms"
    return " ".join(x for x in (head, text, context, message) if x)


def print_trace(source: TextIO, out: TextIO, err: TextIO, wanted: TraceFilter) -> int:
    """Print the lines of ``source`` that ``wanted`` accepts; the number printed."""
    printed = unreadable = 0
    for line in read_lines(source):
        if line is None:
            unreadable += 1
        elif wanted.accepts(line):
            out.write(format_line(line) + "\n")
            printed += 1
    if unreadable:
        err.write(f"{unreadable} line(s) were not trace lines and were skipped\n")
    return printed

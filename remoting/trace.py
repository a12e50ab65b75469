"""The protocol trace: one JSON line per remoting request and response, and per gRPC call, in a file.

The event loop only builds a small dict per frame and puts it on a bounded queue; a thread encodes and writes
the lines. When the disk cannot keep up, the queue fills and further lines are dropped and counted (``dropped``),
so a slow disk never makes the process grow or the loop wait. Header values longer than ``MAX_VALUE_CHARS`` are cut,
which bounds what the queue holds (about ``MAX_QUEUED`` x 16 fields x ``MAX_VALUE_CHARS``).

Line fields (absent when not known): ``time`` (UTC, ISO 8601), ``proto`` (remoting | grpc), ``server`` (broker |
namesrv), ``dir`` (request | response | call), ``conn`` (connection id; gRPC ones start with g), ``peer``,
``client`` (client id: for remoting, from the connection's heartbeat), ``lang``, ``ver``, ``code`` and ``name``
(request code; on a response its response code, with ``request`` / ``requestName``), ``opaque``, ``oneway``,
``topic``, ``group``, ``fields`` (header fields), ``remark``, ``body`` (bytes), ``latencyMs`` (responses and calls);
gRPC calls: ``method``, ``stream``, ``status``, ``statusName``, ``message``, and ``code`` / ``name`` (the v2 status the
answer carried) and ``fault`` (the fault rule that acted on it).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("pocketmq.trace")

MAX_QUEUED = 4096  # lines waiting for the writer thread; beyond that they are dropped and counted
MAX_VALUE_CHARS = 512
MAX_FIELDS = 64
TRACE_SUFFIX = ".jsonl"  # the admin API writes only files with this suffix (never a config file or a script)


def clipped_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Header fields as traced: long values cut (their length noted), at most ``MAX_FIELDS`` of them."""
    out: dict[str, Any] = {}
    for i, (key, value) in enumerate(fields.items()):
        if i >= MAX_FIELDS:
            out["…"] = f"{len(fields) - MAX_FIELDS} more fields"
            break
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            value = f"{value[:MAX_VALUE_CHARS]}…({len(value)} chars)"
        out[key[:MAX_VALUE_CHARS]] = value
    return out


def iso_time(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_line(entry: Mapping[str, Any], seq: int | None = None) -> str:
    """One trace line; ``ts`` (seconds since the epoch) becomes ``time``; ``seq`` is the live trace's number.
    ``entry`` is left as it is: the writer thread and the live trace (remoting.trace_ring) share it."""
    ts = entry.get("ts")
    line: dict[str, Any] = {"time": iso_time(ts)} if isinstance(ts, float) else {}
    if seq is not None:
        line["seq"] = seq
    line.update(entry)
    line.pop("ts", None)
    try:
        # orjson: 3.7 us a line where json.dumps takes 11.3, and the writer thread shares the GIL with the loop.
        return orjson.dumps(line, default=str).decode()
    except TypeError:  # text orjson refuses (a lone surrogate): the standard encoder escapes it (\udXXX)
        return json.dumps(line, separators=(",", ":"), default=str)


class TraceWriter:
    """Appends lines to ``path`` from a thread of its own. ``put`` never blocks."""

    def __init__(self, path: Path, max_queued: int = MAX_QUEUED) -> None:
        self.path = path
        self.written = 0
        self.dropped = 0
        self.failed: str | None = None  # why writing stopped (a full disk, say)
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(max_queued)
        self._stop = threading.Event()
        # Opened here, so a path that cannot be written is refused at once; appended to, never truncated.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1 << 16)
        self._thread = threading.Thread(target=self._run, name="pocketmq-trace", daemon=True)
        self._thread.start()

    def put(self, entry: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            try:
                entry = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    break
                continue
            if self.failed is not None:
                self.dropped += 1
                continue
            try:
                text = encode_line(entry)
            except (TypeError, ValueError):  # a bug in what was traced: that line only
                self.dropped += 1
                continue
            try:
                self._file.write(text + "\n")
                self.written += 1
                if self._queue.empty():
                    self._file.flush()
            except (OSError, ValueError) as err:
                self.failed = str(err)
                log.error("protocol trace: writing %s failed, further lines are dropped: %s", self.path, err)
        try:
            self._file.close()
        except OSError as err:
            log.error("protocol trace: closing %s failed: %s", self.path, err)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then close the file (blocks up to ``timeout``: call it off the event loop)."""
        self._stop.set()
        self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        return {"file": str(self.path), "written": self.written, "dropped": self.dropped, "failed": self.failed}

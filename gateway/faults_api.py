"""Admin API routes for fault injection and the protocol trace (docs/testing.md), next to gateway.admin_api.

GET  /api/faults                 {"rules": [...with matched / injected counts], "injected": {rule id: count}}
POST /api/faults                 a rule (remoting.fault_rules): {"code" (remoting) | "method" (gRPC), "topic", ...,
                                 "respond" | "delayMs" | "drop" | "close", "times" | "fraction" + "seed"}
                                 -> the rule with its id
POST /api/faults/remove          {"id"} -> the removed rule (404 when there is none)
POST /api/faults/clear           {} -> {"removed": n}
GET  /api/trace                  {"on", "live": {"seq", "held", "capacity"}, "file", "written", "dropped", "failed"}
POST /api/trace/on               {"file"}: a path ending in .jsonl (relative: under the data directory); or
                                 {"live": true}: the live trace only (in memory), unless a file trace runs
POST /api/trace/off              {} -> the last status (file and live both stop)
GET  /api/trace/recent           the live trace's last entries (gateway.trace_recent)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from gateway.http_endpoint import HttpError, HttpRequest, HttpResponse, Routes, json_response
from gateway.trace_recent import recent_response
from remoting.fault_rules import FaultRuleError
from remoting.request_hooks import RequestHooks
from remoting.trace import TRACE_SUFFIX, TraceWriter


def trace_path(text: Any, data_dir: Path) -> Path:
    """Where a trace asked for over HTTP goes: only ``.jsonl`` files, relative paths under the data directory."""
    if not isinstance(text, str) or not text.strip():
        raise HttpError(400, 'file is required: the path of the trace (ending in .jsonl); or "live": true to trace '
                             "into memory only (GET /api/trace/recent)")  # fmt: skip
    path = Path(text.strip()).expanduser()
    if path.suffix != TRACE_SUFFIX:
        raise HttpError(400, f"the trace file must end in {TRACE_SUFFIX} (the port has no login: it never writes "
                             "other files)")  # fmt: skip
    return path if path.is_absolute() else data_dir / path


class HooksApi:
    def __init__(self, hooks: RequestHooks, data_dir: Path) -> None:
        self.hooks = hooks
        self.data_dir = data_dir

    def routes(self) -> Routes:
        return {
            ("GET", "/api/faults"): self.list_faults,
            ("POST", "/api/faults"): self.add_fault,
            ("POST", "/api/faults/remove"): self.remove_fault,
            ("POST", "/api/faults/clear"): self.clear_faults,
            ("GET", "/api/trace"): self.trace_status,
            ("POST", "/api/trace/on"): self.trace_on,
            ("POST", "/api/trace/off"): self.trace_off,
            ("GET", "/api/trace/recent"): self.trace_recent,
        }

    async def list_faults(self, request: HttpRequest) -> HttpResponse:
        faults = self.hooks.faults
        counts = {f"{rule}": n for (rule, _action), n in sorted(faults.injected_counts().items())}
        return json_response({"rules": [r.to_json() for r in faults.rules], "injected": counts})

    async def add_fault(self, request: HttpRequest) -> HttpResponse:
        try:
            rule = self.hooks.faults.add(request.json())
        except FaultRuleError as err:
            raise HttpError(400, str(err)) from None
        return json_response(rule.to_json())

    async def remove_fault(self, request: HttpRequest) -> HttpResponse:
        rule_id = request.json().get("id")
        if isinstance(rule_id, bool) or not isinstance(rule_id, int | str) or not str(rule_id).strip().isdigit():
            raise HttpError(400, "id must be a rule's number (GET /api/faults lists them)")
        rule = self.hooks.faults.remove(int(rule_id))
        if rule is None:
            raise HttpError(404, f"no fault rule {rule_id}")
        return json_response(rule.to_json())

    async def clear_faults(self, request: HttpRequest) -> HttpResponse:
        return json_response({"removed": self.hooks.faults.clear()})

    def _status(self) -> dict[str, Any]:
        trace, live = self.hooks.trace, self.hooks.live
        status = {"on": self.hooks.tracing, "live": {"seq": live.seq, "held": len(live), "capacity": live.capacity}}
        return {**status, **(trace.status() if trace is not None else {})}

    async def trace_status(self, request: HttpRequest) -> HttpResponse:
        return json_response(self._status())

    async def trace_on(self, request: HttpRequest) -> HttpResponse:
        body = request.json()
        live = body.get("live", False)
        if not isinstance(live, bool):
            raise HttpError(400, f"live must be true or false, not {live!r:.40}")
        if live and body.get("file") is None:
            self.hooks.live_on()
            return json_response(self._status())
        path = trace_path(body.get("file"), self.data_dir)
        # Opening the file, and closing a trace it replaces, may wait for the disk: off the loop. The switch itself
        # happens on the loop, which is the only thread that touches the dispatch tables.
        try:
            writer = await anyio.to_thread.run_sync(TraceWriter, path)
        except OSError as err:
            raise HttpError(400, f"cannot write the trace to {path}: {err.strerror or err}") from None
        old = self.hooks.swap_trace(writer)
        if old is not None:
            await anyio.to_thread.run_sync(old.close)
        return json_response(self._status())

    async def trace_off(self, request: HttpRequest) -> HttpResponse:
        old = self.hooks.trace_off()
        if old is not None:
            await anyio.to_thread.run_sync(old.close)
        return json_response({**self._status(), **(old.status() if old is not None else {})})

    async def trace_recent(self, request: HttpRequest) -> HttpResponse:
        return recent_response(self.hooks.live, request, self.hooks.tracing)

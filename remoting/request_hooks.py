"""Fault injection and the protocol trace, in front of the process's dispatch tables and gRPC servers.

Nothing is installed while there is no fault rule and the trace is off: the tables run their handlers directly
and the gRPC server checks one attribute per call. Adding the first rule or turning the trace on installs one
interceptor in every attached table; removing the last rule with the trace off takes it out again. Rules for gRPC
calls install the gRPC server's ``intercept`` the same way, only while there are some.

While the trace is on, each entry goes to the live trace (``live``, the last entries in memory) and, when the trace
has a file, to its writer too. ``live_on()`` traces without a file.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codec.codes import (
    GRPC_CLIENT_ID_METADATA,
    GRPC_CLIENT_VERSION_METADATA,
    GRPC_LANGUAGE_METADATA,
    RequestCode,
    ResponseCode,
)
from codec.command import RemotingCommand
from remoting.connection import Connection, HandlerResult, error_response
from remoting.fault_rules import request_facts
from remoting.faults import CLIENT_ID_ATTRIBUTE, FaultInjector, Handler, then
from remoting.server import DispatchTable
from remoting.trace import MAX_VALUE_CHARS, TraceWriter, clipped_fields
from remoting.trace_ring import TraceRing

if TYPE_CHECKING:
    from remoting.grpc_server import CallContext, CallIntercept, GrpcServer

REQUEST_NAMES = {int(c): c.name for c in RequestCode}
RESPONSE_NAMES = {int(c): c.name for c in ResponseCode}


class RequestHooks:
    def __init__(self) -> None:
        self.faults = FaultInjector(on_change=self._update)
        self.trace: TraceWriter | None = None  # the trace's file, when it has one
        self.live = TraceRing()
        self.live_only = False  # tracing without a file
        self._feed: TraceFeed | None = None  # where entries go while tracing
        self._tables: list[tuple[DispatchTable, str]] = []
        self._grpc: list[tuple[GrpcServer, CallIntercept | None]] = []
        self._installed = False

    # ---- wiring ---------------------------------------------------------------------------------------

    def attach(self, table: DispatchTable, server: str) -> None:
        """Hook ``table`` (of the ``server`` named in trace lines: broker, namesrv) whenever hooks are wanted."""
        self._tables.append((table, server))
        if self._installed:
            table.intercept(self._interceptor(server))

    def attach_grpc(self, server: GrpcServer, intercept: CallIntercept | None = None) -> None:
        """Trace ``server``'s calls when the trace is on; ``intercept`` (gateway.grpc.faults) applies the gRPC
        fault rules to them while there are some."""
        self._grpc.append((server, intercept))
        server.observer = self._grpc_call if self._feed is not None else None
        server.intercept = intercept if self.faults.grpc_rules else None

    def _update(self) -> None:
        tracing = self.trace is not None or self.live_only
        self._feed = TraceFeed(self.live, self.trace) if tracing else None
        wanted = bool(self.faults.remoting_rules) or tracing
        if wanted != self._installed:
            self._installed = wanted
            for table, server in self._tables:
                table.intercept(self._interceptor(server) if wanted else None)
        for grpc, intercept in self._grpc:
            grpc.observer = self._grpc_call if tracing else None
            grpc.intercept = intercept if self.faults.grpc_rules else None

    # ---- the trace --------------------------------------------------------------------------------------

    def trace_on(self, path: Path) -> TraceWriter:
        """Start tracing to ``path`` (appended to; OSError when it cannot be opened); replaces a running trace.
        Blocks on the disk: at start-up, or see ``swap_trace``."""
        writer = TraceWriter(path)
        old = self.swap_trace(writer)
        if old is not None:
            old.close()
        return writer

    def swap_trace(self, writer: TraceWriter) -> TraceWriter | None:
        """Trace to ``writer`` from now on (on the event loop); the previous writer, still to be closed."""
        old, self.trace = self.trace, writer
        self._update()
        return old

    def live_on(self) -> None:
        """Trace into the live trace only (no file), unless the trace is on already (a file feeds it too)."""
        self.live_only = True
        self._update()

    @property
    def tracing(self) -> bool:
        return self._feed is not None

    def trace_off(self) -> TraceWriter | None:
        """Stop tracing (file and live); the writer, still to be closed (``close()`` waits for its thread: off
        the loop). The live trace keeps its last entries."""
        old, self.trace = self.trace, None
        self.live_only = False
        self._update()
        return old

    # ---- per request ----------------------------------------------------------------------------------

    def _interceptor(self, server: str) -> Any:
        faults = self.faults

        def intercept(
            cmd: RemotingCommand, conn: Connection, handler: Handler, is_step: bool
        ) -> HandlerResult | Awaitable[HandlerResult]:
            trace = self._feed
            if trace is None:
                rule = faults.choose(cmd, conn) if faults.remoting_rules else None
                return handler(cmd, conn) if rule is None else faults.apply(rule, cmd, conn, handler, is_step)
            started = time.monotonic()
            request = _request_entry(cmd, conn, server)
            trace.put(request)
            try:
                rule = faults.choose(cmd, conn) if faults.remoting_rules else None
                result = handler(cmd, conn) if rule is None else faults.apply(rule, cmd, conn, handler, is_step)
            except Exception as err:
                trace.put(_response_entry(request, error_response(cmd, err), started))
                raise
            if cmd.is_oneway:
                return result
            if result is None or isinstance(result, RemotingCommand):
                trace.put(_response_entry(request, result, started))
                return result

            async def traced(response: RemotingCommand | None) -> RemotingCommand | None:
                trace.put(_response_entry(request, response, started))
                return response

            return then(result, traced, is_step)

        return intercept

    def _grpc_call(self, context: CallContext, path: str, stream_id: int, request: Any, size: int,
                   status: int, message: str, started: float, answer: int | None = None,
                   fault: str | None = None) -> None:  # fmt: skip
        trace = self._feed
        if trace is None:
            return
        meta = context.metadata
        entry: dict[str, Any] = {
            "ts": time.time(), "proto": "grpc", "server": "broker", "dir": "call", "conn": f"g{context.connection_id}",
            "peer": f"{context.peer[0]}:{context.peer[1]}", "client": meta.get(GRPC_CLIENT_ID_METADATA),
            "lang": meta.get(GRPC_LANGUAGE_METADATA), "ver": meta.get(GRPC_CLIENT_VERSION_METADATA),
            "method": path.rsplit("/", 1)[-1], "stream": stream_id, "body": size, "status": status,
            "statusName": _grpc_status_name(status), "message": message or None,
            "latencyMs": round((time.monotonic() - started) * 1000, 3),
        }  # fmt: skip
        if answer is not None:  # the v2 status in the last response message: OK, or the business error
            entry["code"], entry["name"] = answer, _v2_code_name(answer)
        if fault is not None:
            entry["fault"] = fault
        if request is not None:
            fields = summarize_message(request)
            entry["fields"] = fields
            if "topic" in fields:
                entry["topic"] = fields["topic"]
            if "group" in fields:
                entry["group"] = fields["group"]
        trace.put(entry)

    def close(self) -> None:
        """At shutdown: the trace's last lines are written and its file closed."""
        old = self.trace_off()
        if old is not None:
            old.close()


class TraceFeed:
    """Where a trace entry goes: the live trace, and the file's writer when there is one."""

    __slots__ = ("ring", "writer")

    def __init__(self, ring: TraceRing, writer: TraceWriter | None) -> None:
        self.ring = ring
        self.writer = writer

    def put(self, entry: dict[str, Any]) -> None:
        self.ring.put(entry)
        if self.writer is not None:
            self.writer.put(entry)


def _request_entry(cmd: RemotingCommand, conn: Connection, server: str) -> dict[str, Any]:
    client_id = conn.attributes.get(CLIENT_ID_ATTRIBUTE)
    facts = request_facts(cmd.code, cmd.ext_fields, client_id, cmd.language)
    entry: dict[str, Any] = {
        "ts": time.time(), "proto": "remoting", "server": server, "dir": "request", "conn": conn.id,
        "peer": conn.peer_text, "client": client_id, "lang": cmd.language, "ver": cmd.version, "code": cmd.code,
        "name": REQUEST_NAMES.get(cmd.code), "opaque": cmd.opaque, "oneway": cmd.is_oneway,
        "topic": facts.topic, "group": facts.group, "fields": clipped_fields(cmd.ext_fields), "body": len(cmd.body),
    }  # fmt: skip
    if cmd.remark:
        entry["remark"] = cmd.remark[:512]
    return entry


def _response_entry(request: dict[str, Any], response: RemotingCommand | None, started: float) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ts": time.time(), "proto": "remoting", "server": request["server"], "dir": "response",
        "conn": request["conn"], "peer": request["peer"], "client": request["client"], "lang": request["lang"],
        "ver": request["ver"], "request": request["code"], "requestName": request["name"],
        "opaque": request["opaque"], "topic": request["topic"], "group": request["group"],
        "latencyMs": round((time.monotonic() - started) * 1000, 3),
    }  # fmt: skip
    if response is None:
        entry.update(code=None, name="NO_ANSWER")
        return entry
    entry.update(code=response.code, name=RESPONSE_NAMES.get(response.code), fields=clipped_fields(response.ext_fields),
                 body=len(response.body))  # fmt: skip
    if response.remark:
        entry["remark"] = response.remark[:512]
    return entry


def _grpc_status_name(status: int) -> str:
    from codec.grpc_frames import Status  # imported only once gRPC is up: no protobuf at the remoting start-up

    try:
        return Status(status).name
    except ValueError:
        return str(status)


def _v2_code_name(code: int) -> str:
    from codec.grpc_v2 import definition_pb2  # imported only once gRPC is up

    try:
        return str(definition_pb2.Code.Name(code))
    except ValueError:
        return str(code)


def summarize_message(message: Any, depth: int = 0) -> dict[str, Any]:
    """The top of a protobuf request for a trace line: scalars, resource names (``topic``, ``group``), list sizes."""
    out: dict[str, Any] = {}
    try:
        listed = message.ListFields()
    except Exception:
        return out
    for descriptor, value in listed:
        name = descriptor.name
        # A repeated field or a map (``FieldDescriptor.label`` is gone from newer protobuf releases).
        if hasattr(value, "__len__") and not isinstance(value, str | bytes) and not hasattr(value, "ListFields"):
            out[name] = len(value)
            first = next(iter(value), None) if len(value) and not hasattr(value, "keys") else None
            first = first if hasattr(first, "ListFields") else None
            if first is not None and "topic" not in out:
                topic = getattr(first, "topic", None)
                if topic is not None and getattr(topic, "name", ""):
                    out["topic"] = topic.name
        elif hasattr(value, "ListFields"):
            resource_name = getattr(value, "name", None)
            if isinstance(resource_name, str) and resource_name:
                out[name] = resource_name
            elif depth < 1:
                out[name] = summarize_message(value, depth + 1)
        elif isinstance(value, str | int | float | bool):
            out[name] = value[:MAX_VALUE_CHARS] if isinstance(value, str) else value
        elif isinstance(value, bytes):
            out[name] = f"{len(value)} bytes"
    for nested in list(out.values()):
        if isinstance(nested, dict) and "topic" in nested and "topic" not in out:
            out["topic"] = nested["topic"]
    return out

"""A gRPC server over the ``h2`` library on the broker's event loop: TLS and plaintext on one port.

Why not grpcio's server: it cannot accept TLS and plaintext clients on one port (the Apache proxy does, and the
Java client defaults to TLS while the Python one defaults to plaintext), and it runs its own threads outside
the loop that owns the store, so every call would cross threads and its limits would not be the broker's.
``h2`` (python-hyper, sans-IO) does HTTP/2; this module adds gRPC's conventions on top: a POST per call, its
``:path`` naming the method, length-prefixed messages in DATA frames (``codec.grpc_frames``), and the
``grpc-status`` / ``grpc-message`` trailers.

A method is unary (one request, one response), server-streaming (one request, responses yielded) or
bidirectional (requests received and responses sent until either side ends). Each call runs as a task of its
connection; a reset stream or a lost connection cancels it. A client's cost is bounded: at most
``max_concurrent_streams`` calls at once (HTTP/2 SETTINGS, enforced by h2), a message of at most
``max_message_size`` bytes (checked from its prefix before it is buffered), at most ``max_queued_messages``
unread messages per bidirectional call, and the connection budget shared with the remoting listeners.

While ``intercept`` is set (fault rules for gRPC calls, docs/testing.md) it is asked about each call once its
request is decoded, and may answer it instead of the handler, hold its answer back, swallow it, or close the
connection (``CallFault``). Unset, it costs a call one attribute check.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from anyio.abc import TaskStatus
from google.protobuf.message import DecodeError, Message

from codec.grpc_frames import (
    CONTENT_TYPE,
    GrpcFrameError,
    MessageDecoder,
    Status,
    encode_message,
    parse_timeout,
    percent_encode,
)
from remoting.fault_rules import Action
from remoting.grpc_tls import TLS_HANDSHAKE_RECORD, TlsSession
from remoting.limits import ConnectionSlots
from runtime.logs import RateLimitedLog

log = logging.getLogger("pocketmq.grpc")
_closings = RateLimitedLog(log, interval_s=10.0, burst=20)
_bugs = RateLimitedLog(log, interval_s=10.0, burst=10)


class GrpcError(Exception):
    """Raised by a method to end its call with a gRPC status other than OK."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Kind(enum.Enum):
    UNARY = "unary"
    SERVER_STREAM = "server-stream"
    BIDI = "bidi"


@dataclass(slots=True)
class CallContext:
    """What a method knows of its call: who called, on which address, with which metadata and deadline."""

    peer: tuple[str, int]
    local: tuple[str, int]  # the address the client connected to (answers such as QueryRoute give it back)
    metadata: dict[str, str]
    deadline: float | None  # loop time, from grpc-timeout
    tls: bool
    connection_id: int


@dataclass(slots=True, frozen=True)
class CallFault:
    """What a fault rule does to one call: ``RESPOND`` sends ``responses`` instead of running the handler (then
    status OK); ``DELAY`` runs it and holds its first message (or its end) back ``delay_s``; ``DROP`` runs it and
    sends nothing, leaving the call open until the client resets it, the connection closes or the deadline passes;
    ``CLOSE`` closes the connection instead. ``reason`` names the rule."""

    action: Action
    reason: str
    responses: tuple[Message, ...] = ()
    delay_s: float = 0.0


# (context, path, the decoded request or None for a bidirectional call) -> the fault for this call, or None.
CallIntercept = Callable[[CallContext, str, Any], CallFault | None]
Unary = Callable[[Any, CallContext], Awaitable[Message]]
ServerStream = Callable[[Any, CallContext], AsyncIterator[Message]]
Bidi = Callable[[AsyncIterator[Any], Callable[[Message], Awaitable[None]], CallContext], Awaitable[None]]


@dataclass(slots=True, frozen=True)
class Method:
    kind: Kind
    request_type: type[Message]
    handler: Callable[..., Any]


@dataclass(slots=True)
class GrpcLimits:
    max_message_size: int = 16 * 1024 * 1024  # a 4 MiB body plus properties fits; Apache's proxy allows 130 MiB
    max_concurrent_streams: int = 256
    max_queued_messages: int = 64  # unread requests of one bidirectional call
    max_header_list_size: int = 64 * 1024
    idle_timeout_s: float = 120.0


class GrpcServer:
    """Listens on one port and serves the registered methods (``/package.Service/Method`` paths)."""

    def __init__(
        self,
        methods: dict[str, Method],
        *,
        tls_context: Callable[[], ssl.SSLContext | None] | None = None,
        limits: GrpcLimits | None = None,
        slots: ConnectionSlots | None = None,
        name: str = "grpc",
    ) -> None:
        self.methods = methods
        self.limits = limits or GrpcLimits()
        self.slots = slots
        self.name = name
        self._tls_context = tls_context
        self._tls: ssl.SSLContext | None = None
        self.connections: set[GrpcConnection] = set()
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        # Told of every finished call while set (the protocol trace):
        # (context, path, stream id, request or None, request bytes, grpc status, message, loop time started).
        self.observer: Callable[..., None] | None = None
        self.intercept: CallIntercept | None = None  # set only while there are fault rules for gRPC calls

    def tls_context(self) -> ssl.SSLContext | None:
        if self._tls is None and self._tls_context is not None:
            self._tls = self._tls_context()
        return self._tls

    async def serve(self, host: str, port: int, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: GrpcConnection(self, loop), host, port, reuse_address=True)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        try:
            task_status.started(self.port)
            while True:
                await anyio.sleep(max(1.0, self.limits.idle_timeout_s / 4))
                now = loop.time()
                for conn in list(self.connections):
                    if not conn.streams and now - conn.last_activity > self.limits.idle_timeout_s:
                        conn.close(f"idle for over {self.limits.idle_timeout_s:g} s")
        finally:
            server.close()
            for conn in list(self.connections):
                conn.abort()

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()


@dataclass(slots=True)
class _Stream:
    stream_id: int
    method: Method
    context: CallContext
    decoder: MessageDecoder
    requests: list[bytes] = field(default_factory=list)
    queue: asyncio.Queue[bytes | None] | None = None
    task: asyncio.Task[None] | None = None
    headers_sent: bool = False
    ended: bool = False  # the client half-closed
    path: str = ""
    request: Any = None  # the decoded request of a unary or server-streaming call (kept for the trace)
    answer: int | None = None  # while tracing: the v2 status code of the last response message sent, if it had one
    fault: str | None = None  # the fault rule that acted on the call ("fault rule N"), for the trace


def answered_status(response: Message) -> int | None:
    """The RocketMQ v2 ``status.code`` a response message carries (a business error rides on gRPC status OK)."""
    field = response.DESCRIPTOR.fields_by_name.get("status")
    if field is None or field.message_type is None or not response.HasField("status"):
        return None
    return int(response.status.code)  # type: ignore[attr-defined]


class GrpcConnection(asyncio.Protocol):
    """One client connection: TLS or not, then HTTP/2, then one task per call."""

    _ids = iter(range(1, 1 << 62))

    def __init__(self, server: GrpcServer, loop: asyncio.AbstractEventLoop) -> None:
        self.id = next(self._ids)
        self.server = server
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("?", 0)
        self.local: tuple[str, int] = ("?", 0)
        self.tls: TlsSession | None = None
        self.h2: h2.connection.H2Connection | None = None
        self.streams: dict[int, _Stream] = {}
        self.last_activity = loop.time()
        self._window_open = asyncio.Event()
        self._counted = False
        self._closed = False
        self._flush_scheduled = False

    # ---- transport ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        self.local = (str(local[0]), int(local[1])) if local else ("?", 0)
        slots = self.server.slots
        if slots is not None:
            if not slots.admit(self._peer_text):
                transport.abort()
                return
            self._counted = True
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.connections.discard(self)
        if self._counted and self.server.slots is not None:
            self.server.slots.release()
            self._counted = False
        for stream in list(self.streams.values()):
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self._window_open.set()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        try:
            if self.h2 is None:
                self._start(data[:1])
            if self.tls is not None:
                data, reply, closed = self.tls.receive(data)
                if reply:
                    self._raw_write(reply)
                if closed:
                    self.close("closed its TLS session")
                    return
                if self.tls.handshake_done and self.tls.alpn != "h2":
                    raise ssl.SSLError(f"the client negotiated {self.tls.alpn!r}, not h2, over TLS")
                self._flush()  # the server preface, once the handshake is done
                if not data:
                    return
            self._on_h2_bytes(data)
        except (ssl.SSLError, h2.exceptions.ProtocolError, GrpcFrameError) as err:
            _closings.warning("%s: closing connection from %s: %s", self.server.name, self._peer_text, err)
            self._flush()
            self.abort()
        except Exception as err:  # a bug must close this connection only
            _bugs.error("%s: closing connection from %s: %r", self.server.name, self._peer_text, err, exc_info=err)
            self.abort()

    def _start(self, first: bytes) -> None:
        if first and first[0] == TLS_HANDSHAKE_RECORD:
            context = self.server.tls_context()
            if context is None:
                raise ssl.SSLError("TLS is not enabled on this port")
            self.tls = TlsSession(context)
        limits = self.server.limits
        # h2's per-header checks (RFC 9113 8.2-8.3) were a quarter of a unary call's CPU; the server reads only
        # :method, :path, content-type and grpc-timeout itself, and answers anything else by name.
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024 * 1024,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(4 * 1024 * 1024)
        self._flush()

    def _raw_write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush_soon(self) -> None:
        """Write what h2 has queued once this round of the loop is over: a unary call's headers, message and
        trailers, and the window updates of the requests read meanwhile, leave in one write (a write per frame
        group was an eighth of the CPU of a call)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        if self.h2 is None or (self.tls is not None and not self.tls.handshake_done):
            return  # h2 keeps its output (the server preface) until TLS is up
        data = self.h2.data_to_send()
        if not data:
            return
        if self.tls is not None:
            data = self.tls.send(data)
        self._raw_write(data)

    def close(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            _closings.info("%s: closing connection from %s: %s", self.server.name, self._peer_text, reason)
            if self.h2 is not None:
                with contextlib.suppress(h2.exceptions.ProtocolError):
                    self.h2.close_connection()
                    self._flush()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def _peer_text(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"

    # ---- HTTP/2 events --------------------------------------------------------------------------------

    def _on_h2_bytes(self, data: bytes) -> None:
        assert self.h2 is not None
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self._on_request(event.stream_id, event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self._on_data(event.stream_id, event.data, event.flow_controlled_length)
            elif isinstance(event, h2.events.StreamEnded):
                self._on_end(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None and stream.task is not None:
                    stream.task.cancel()
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self._window_open.set()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.close("sent GOAWAY")
        self._flush_soon()

    def _on_request(self, stream_id: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        headers = {bytes(k).decode("latin-1"): bytes(v).decode("latin-1") for k, v in raw_headers}
        path = headers.get(":path", "")
        if headers.get(":method") != "POST" or not headers.get("content-type", "").startswith(CONTENT_TYPE.decode()):
            self._respond_headers_only(stream_id, 415, Status.UNKNOWN, "gRPC requests are POSTs of application/grpc")
            return
        method = self.server.methods.get(path)
        if method is None:
            self._trailers_only(stream_id, Status.UNIMPLEMENTED, f"method {path} is not implemented")
            return
        deadline = None
        if "grpc-timeout" in headers:
            try:
                deadline = self.loop.time() + parse_timeout(headers["grpc-timeout"].encode("latin-1"))
            except GrpcFrameError as err:
                self._trailers_only(stream_id, err.status, str(err))
                return
        metadata = {k: v for k, v in headers.items() if not k.startswith(":")}
        context = CallContext(self.peer, self.local, metadata, deadline, self.tls is not None, self.id)
        stream = _Stream(stream_id, method, context, MessageDecoder(self.server.limits.max_message_size), path=path)
        self.streams[stream_id] = stream
        if method.kind is Kind.BIDI:
            stream.queue = asyncio.Queue()
            stream.task = self.loop.create_task(self._run(stream))

    def _on_data(self, stream_id: int, data: bytes, flow_controlled: int) -> None:
        assert self.h2 is not None
        stream = self.streams.get(stream_id)
        if flow_controlled:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.acknowledge_received_data(flow_controlled, stream_id)
        if stream is None:
            return
        try:
            messages = stream.decoder.feed(data)
        except GrpcFrameError as err:
            self._fail_stream(stream, err.status, str(err))
            return
        if stream.queue is not None:
            for message in messages:
                if stream.queue.qsize() >= self.server.limits.max_queued_messages:
                    self._fail_stream(stream, Status.RESOURCE_EXHAUSTED, "too many unread messages on this stream")
                    return
                stream.queue.put_nowait(message)
        else:
            stream.requests += messages
            if len(stream.requests) > 1:
                self._fail_stream(stream, Status.INVALID_ARGUMENT, "more than one request message on a unary call")

    def _on_end(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.ended = True
        try:
            stream.decoder.finish()
        except GrpcFrameError as err:
            self._fail_stream(stream, err.status, str(err))
            return
        if stream.queue is not None:
            stream.queue.put_nowait(None)
        elif stream.task is None:
            if len(stream.requests) != 1:
                self._fail_stream(stream, Status.INVALID_ARGUMENT, "a unary call needs exactly one request message")
                return
            stream.task = self.loop.create_task(self._run(stream))

    # ---- calls ----------------------------------------------------------------------------------------

    async def _run(self, stream: _Stream) -> None:
        observer = self.server.observer
        started = self.loop.time() if observer is not None else 0.0
        status, message = Status.CANCELLED, "the call was cancelled"
        try:
            status, message = await self._outcome(stream)
        finally:
            if observer is not None:
                size = len(stream.requests[0]) if stream.requests else 0
                try:
                    observer(stream.context, stream.path, stream.stream_id, stream.request, size, int(status), message,
                             started, stream.answer, stream.fault)  # fmt: skip
                except Exception as err:  # the trace must never break a call
                    _bugs.error("%s: tracing a call failed: %r", self.server.name, err, exc_info=err)

    async def _outcome(self, stream: _Stream) -> tuple[Status, str]:
        status, message = Status.OK, ""
        try:
            try:
                if stream.context.deadline is not None:
                    async with asyncio.timeout_at(stream.context.deadline):
                        await self._call(stream)
                else:
                    await self._call(stream)
            except TimeoutError:
                status, message = Status.DEADLINE_EXCEEDED, "the call's deadline passed"
            except GrpcError as err:
                status, message = err.status, err.message
            except DecodeError as err:
                status, message = Status.INVALID_ARGUMENT, f"the request is not a valid protobuf message: {err}"
            except asyncio.CancelledError:
                raise
            except Exception as err:
                _bugs.error("%s: %s failed: %r", self.server.name, stream.context.metadata, err, exc_info=err)
                status, message = Status.INTERNAL, f"internal error: {type(err).__name__}"
            if not self._closed and stream.stream_id in self.streams:
                self._finish(stream, status, message)
        finally:
            self.streams.pop(stream.stream_id, None)
        return status, message

    async def _call(self, stream: _Stream) -> None:
        method, context = stream.method, stream.context
        request = None
        if method.kind is not Kind.BIDI:
            request = stream.request = method.request_type.FromString(stream.requests[0])
        intercept = self.server.intercept
        if intercept is not None:
            fault = intercept(context, stream.path, request)
            if fault is not None:
                stream.fault = fault.reason
                await self._call_faulted(stream, request, fault)
                return
        if method.kind is Kind.UNARY:
            response = await method.handler(request, context)
            await self._send_message(stream, response)
        elif method.kind is Kind.SERVER_STREAM:
            async for response in method.handler(request, context):
                await self._send_message(stream, response)
        else:
            await method.handler(self._requests(stream), partial(self._send_message, stream), context)

    async def _requests(self, stream: _Stream) -> AsyncIterator[Any]:
        assert stream.queue is not None
        while True:
            raw = await stream.queue.get()
            if raw is None:
                return
            yield stream.method.request_type.FromString(raw)

    async def _handle(self, stream: _Stream, request: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        """Run the call's handler with its messages going to ``send``."""
        method, context = stream.method, stream.context
        if method.kind is Kind.UNARY:
            await send(await method.handler(request, context))
        elif method.kind is Kind.SERVER_STREAM:
            async for response in method.handler(request, context):
                await send(response)
        else:
            await method.handler(self._requests(stream), send, context)

    async def _call_faulted(self, stream: _Stream, request: Any, fault: CallFault) -> None:
        if fault.action is Action.CLOSE:
            self.streams.pop(stream.stream_id, None)  # nothing more is sent on it
            self.close(fault.reason)
            raise GrpcError(Status.UNAVAILABLE, fault.reason)  # for the trace: the client sees the connection go
        if fault.action is Action.RESPOND:
            for response in fault.responses:
                await self._send_message(stream, response)
            return
        if fault.action is Action.DROP:
            await self._dropped(stream, request)
        else:
            await self._delayed(stream, request, fault.delay_s)

    async def _dropped(self, stream: _Stream, request: Any) -> None:
        async def lost(response: Message) -> None:
            return None

        with contextlib.suppress(GrpcError):  # an error status is an answer too: lost as well
            await self._handle(stream, request, lost)
        # Never answered: cancelled when the client resets the stream or the connection is lost; at the call's
        # deadline, _outcome ends it as it ends any late call.
        await self.loop.create_future()

    async def _delayed(self, stream: _Stream, request: Any, delay_s: float) -> None:
        held = True

        async def later(response: Message) -> None:
            nonlocal held
            if held:
                held = False
                await asyncio.sleep(delay_s)
            await self._send_message(stream, response)

        try:
            await self._handle(stream, request, later)
        except GrpcError:
            if held:
                await asyncio.sleep(delay_s)
            raise
        if held:  # a call that ended without a message: its end is its answer
            await asyncio.sleep(delay_s)

    async def _send_message(self, stream: _Stream, response: Message) -> None:
        assert self.h2 is not None
        if self._closed or stream.stream_id not in self.streams:
            raise asyncio.CancelledError
        if not stream.headers_sent:
            try:
                self.h2.send_headers(stream.stream_id, [(b":status", b"200"), (b"content-type", CONTENT_TYPE)])
            except h2.exceptions.ProtocolError:
                raise asyncio.CancelledError from None
            stream.headers_sent = True
        if self.server.observer is not None:
            stream.answer = answered_status(response)
        data = memoryview(encode_message(response.SerializeToString()))
        while data:
            try:
                window = min(self.h2.local_flow_control_window(stream.stream_id), self.h2.max_outbound_frame_size)
            except h2.exceptions.ProtocolError:
                raise asyncio.CancelledError from None
            if window <= 0:
                self._flush()
                self._window_open.clear()
                await self._window_open.wait()
                if self._closed or stream.stream_id not in self.streams:
                    raise asyncio.CancelledError
                continue
            try:
                self.h2.send_data(stream.stream_id, bytes(data[:window]))
            except h2.exceptions.ProtocolError:  # reset, or the connection is going away
                raise asyncio.CancelledError from None
            data = data[window:]
        self._flush_soon()

    def _finish(self, stream: _Stream, status: Status, message: str) -> None:
        assert self.h2 is not None
        trailers = [(b"grpc-status", str(int(status)).encode())]
        if message:
            trailers.append((b"grpc-message", percent_encode(message)))
        try:
            if not stream.headers_sent:
                headers = [(b":status", b"200"), (b"content-type", CONTENT_TYPE), *trailers]
                self.h2.send_headers(stream.stream_id, headers, end_stream=True)
            else:
                self.h2.send_headers(stream.stream_id, trailers, end_stream=True)
        except h2.exceptions.ProtocolError:  # the stream was reset, or the client sent GOAWAY: nobody to answer
            return
        self._flush_soon()

    def _fail_stream(self, stream: _Stream, status: Status, message: str) -> None:
        self.streams.pop(stream.stream_id, None)
        if stream.task is not None:
            stream.task.cancel()
        self._finish(stream, status, message)

    def _trailers_only(self, stream_id: int, status: Status, message: str) -> None:
        assert self.h2 is not None
        self.h2.send_headers(
            stream_id,
            [
                (b":status", b"200"),
                (b"content-type", CONTENT_TYPE),
                (b"grpc-status", str(int(status)).encode()),
                (b"grpc-message", percent_encode(message)),
            ],
            end_stream=True,
        )

    def _respond_headers_only(self, stream_id: int, http_status: int, status: Status, message: str) -> None:
        assert self.h2 is not None
        self.h2.send_headers(
            stream_id,
            [
                (b":status", str(http_status).encode()),
                (b"grpc-status", str(int(status)).encode()),
                (b"grpc-message", percent_encode(message)),
            ],
            end_stream=True,
        )

"""A TCP listener that runs one ``Connection`` per client and routes requests through a dispatch table."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

from codec.codes import ResponseCode
from codec.command import RemotingCommand
from remoting.connection import Connection, HandlerResult
from remoting.limits import ConnectionLimits, ConnectionSlots

log = logging.getLogger("pocketmq.remoting")

Handler = Callable[[RemotingCommand, Connection], HandlerResult | Awaitable[HandlerResult]]
# Looks at a request before its handler: None lets it through, a response refuses it (ACL).
Guard = Callable[[RemotingCommand, Connection], RemotingCommand | None]
# Runs every request in place of its handler, given the handler and whether it is a coroutine function (fault
# injection, protocol trace).
Interceptor = Callable[[RemotingCommand, Connection, Handler, bool], HandlerResult | Awaitable[HandlerResult]]

TIMER_SWEEP_S = 1.0  # how often idle, slow and stalled connections are looked for (at most)
BACKLOG = 1024  # NettySystemConfig socketBacklog


class DispatchTable:
    """Request code -> handler. Unknown codes get REQUEST_CODE_NOT_SUPPORTED naming the code.

    A handler is a plain function, answered without a task switch, that returns a response, None or an awaitable
    to complete later (a held pull); or a coroutine function, run as a step that later requests wait for."""

    def __init__(self) -> None:
        self.handlers: dict[int, tuple[Handler, bool]] = {}
        self.default: tuple[Handler, bool] = _UNSUPPORTED
        # While an interceptor is installed: the handlers without it, to put back when it is removed.
        self._plain: tuple[dict[int, tuple[Handler, bool]], tuple[Handler, bool]] | None = None
        self._interceptor: Interceptor | None = None

    def register(self, code: int, handler: Handler) -> None:
        entry = (handler, _is_coroutine_function(handler))
        if self._plain is not None and self._interceptor is not None:
            self._plain[0][int(code)] = entry
            entry = (_intercepted(self._interceptor, *entry), entry[1])
        self.handlers[int(code)] = entry

    def resolve(self, code: int) -> tuple[Handler, bool]:
        """The handler of ``code`` and whether it is a coroutine function."""
        return self.handlers.get(code, self.default)

    def guard(self, check: Guard) -> None:
        """Run ``check`` before every handler registered so far (and for unknown codes). Installed only when
        wanted, so a table without a guard pays nothing per request."""
        interceptor = self._interceptor
        self.intercept(None)
        self.handlers = {code: (_guarded(check, h), is_async) for code, (h, is_async) in self.handlers.items()}
        self.default = (_guarded(check, self.default[0]), self.default[1])
        self.intercept(interceptor)

    def intercept(self, interceptor: Interceptor | None) -> None:
        """Run every request through ``interceptor(cmd, conn, handler)`` (after any guard); None removes it. Only
        installed while something (a fault rule, the trace) wants it, so the table pays nothing otherwise."""
        if self._plain is not None:
            self.handlers, self.default = self._plain
            self._plain = None
        self._interceptor = interceptor
        if interceptor is None:
            return
        self._plain = (self.handlers, self.default)
        self.handlers = {code: (_intercepted(interceptor, h, a), a) for code, (h, a) in self.handlers.items()}
        self.default = (_intercepted(interceptor, *self.default), self.default[1])

    def __call__(self, cmd: RemotingCommand, conn: Connection) -> HandlerResult | Awaitable[HandlerResult]:
        handler, _is_async = self.resolve(cmd.code)
        return handler(cmd, conn)


def _not_supported(cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
    return cmd.response(ResponseCode.REQUEST_CODE_NOT_SUPPORTED, f" request type {cmd.code} not supported")


_UNSUPPORTED: tuple[Handler, bool] = (_not_supported, False)


def _guarded(check: Guard, handler: Handler) -> Handler:
    # A plain function even around a coroutine function: a refusal is answered at once, anything else is whatever
    # the handler returns (the connection still treats its coroutine as a step).
    def guarded(cmd: RemotingCommand, conn: Connection) -> HandlerResult | Awaitable[HandlerResult]:
        refusal = check(cmd, conn)
        if refusal is not None:
            return refusal
        return handler(cmd, conn)

    return guarded


def _intercepted(interceptor: Interceptor, handler: Handler, is_async: bool) -> Handler:
    def intercepted(cmd: RemotingCommand, conn: Connection) -> HandlerResult | Awaitable[HandlerResult]:
        return interceptor(cmd, conn, handler, is_async)

    return intercepted


def _is_coroutine_function(handler: Handler) -> bool:
    call = getattr(handler, "__call__", None)  # noqa: B004 - an instance with an async __call__ counts too
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


class RemotingServer:
    def __init__(
        self,
        name: str,
        dispatch: DispatchTable,
        *,
        limits: ConnectionLimits | None = None,
        slots: ConnectionSlots | None = None,
        on_open: Callable[[Connection], None] | None = None,
        on_close: Callable[[Connection], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.dispatch = dispatch
        self.limits = limits or ConnectionLimits()
        self.slots = slots or ConnectionSlots()
        self.on_open = on_open
        self.on_close = on_close
        self.clock = clock
        self.connections: set[Connection] = set()
        self.unflushed: set[Connection] = set()  # connections with answers not yet written
        self.port = 0
        self._server: asyncio.Server | None = None

    async def serve(self, host: str, port: int, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Connection(self), host, port, backlog=BACKLOG, reuse_address=True)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        try:
            task_status.started(self.port)
            # Timeouts are enforced to within a quarter of the shortest one (tests use sub-second ones).
            interval = min(TIMER_SWEEP_S, max(0.02, min(self.limits.idle_timeout_s, self.limits.frame_timeout_s) / 4))
            while True:
                await anyio.sleep(interval)
                self.sweep()
        finally:
            server.close()
            for conn in list(self.connections):
                conn.abort()

    def sweep(self) -> None:
        now = self.clock()
        for conn in list(self.connections):
            try:
                conn.check_timers(now)
            except Exception:  # a bug in one connection's bookkeeping must not stop the others' timers
                log.exception("%s: checking the timers of the connection from %s failed", self.name, conn.peer_text)
                conn.abort()

    def flush_writes(self) -> None:
        """Write every connection's pending answers now (after a group commit answered its sends), then let them
        read on: all answers go out before any connection handles its next request."""
        flushed, self.unflushed = self.unflushed, set()
        for conn in flushed:
            conn.write_pending(pump=False)
        for conn in flushed:
            conn.resume_after_flush()

    def stop_accepting(self) -> None:
        """Close the listening socket; established connections keep being served."""
        if self._server is not None:
            self._server.close()

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        if self.on_open:
            try:
                self.on_open(conn)
            except Exception:
                log.exception("%s: setting up the connection from %s failed", self.name, conn.peer_text)
                conn.abort()

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self.on_close:
            try:
                self.on_close(conn)
            except Exception:  # a bug in the bookkeeping of one connection must not stop the listener
                log.exception("%s: cleaning up after the connection from %s failed", self.name, conn.peer_text)

"""A TCP listener that runs one ``Connection`` per client and routes requests through a dispatch table."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from codec.codes import ResponseCode
from codec.command import RemotingCommand
from remoting.connection import Connection, HandlerResult

log = logging.getLogger("pocketmq.remoting")

Handler = Callable[[RemotingCommand, Connection], Awaitable[HandlerResult]]


class DispatchTable:
    """Request code -> handler. Unknown codes get REQUEST_CODE_NOT_SUPPORTED naming the code."""

    def __init__(self) -> None:
        self.handlers: dict[int, Handler] = {}

    def register(self, code: int, handler: Handler) -> None:
        self.handlers[int(code)] = handler

    async def __call__(self, cmd: RemotingCommand, conn: Connection) -> HandlerResult:
        handler = self.handlers.get(cmd.code)
        if handler is None:
            return cmd.response(ResponseCode.REQUEST_CODE_NOT_SUPPORTED, f" request type {cmd.code} not supported")
        return await handler(cmd, conn)


class RemotingServer:
    def __init__(
        self,
        name: str,
        dispatch: DispatchTable,
        *,
        max_frame_size: int,
        on_open: Callable[[Connection], None] | None = None,
        on_close: Callable[[Connection], None] | None = None,
    ) -> None:
        self.name = name
        self.dispatch = dispatch
        self.max_frame_size = max_frame_size
        self.on_open = on_open
        self.on_close = on_close
        self.connections: set[Connection] = set()
        self.port = 0
        self._accepting = anyio.CancelScope()

    async def serve(self, host: str, port: int, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        multi = await anyio.create_tcp_listener(local_host=host, local_port=port)
        self.port = multi.extra(SocketAttribute.local_port)
        task_status.started(self.port)
        async with anyio.create_task_group() as connections, multi:
            with self._accepting:
                async with anyio.create_task_group() as acceptors:
                    for listener in multi.listeners:
                        acceptors.start_soon(self._accept_loop, listener, connections)

    async def _accept_loop(self, listener: SocketListener, connections: TaskGroup) -> None:
        while True:
            stream = await listener.accept()
            connections.start_soon(self._handle, stream)

    def stop_accepting(self) -> None:
        """Close the listening socket; established connections keep being served."""
        self._accepting.cancel()

    async def _handle(self, stream: SocketStream) -> None:
        try:
            peer = stream.extra(SocketAttribute.remote_address)
        except OSError:
            return
        conn = Connection(stream, (str(peer[0]), int(peer[1])), self.max_frame_size)
        self.connections.add(conn)
        if self.on_open:
            self.on_open(conn)
        try:
            await conn.run(self.dispatch)
        finally:
            self.connections.discard(conn)
            if self.on_close:
                try:
                    self.on_close(conn)
                except Exception:  # a bug in the bookkeeping of one connection must not stop the listener
                    log.exception("%s: cleaning up after the connection from %s failed", self.name, conn.peer_text)

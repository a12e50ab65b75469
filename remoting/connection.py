"""One remoting connection: a reader that dispatches requests in arrival order, one writer task, and a
pending table for requests the server itself sends (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE).

A handler returns a response, None (nothing to send), or an awaitable that completes later (a send waiting
for its group commit, a long-polled pull). Handlers run one after another so that everything a handler does
before its first real wait (assigning queue offsets, for instance) happens in arrival order; awaitables
complete in their own tasks so that a held pull never blocks the connection.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import ByteStream, TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from codec.codes import ResponseCode
from codec.command import RemotingCommand
from codec.errors import CodecError
from codec.frame import FrameDecoder, encode_frame
from remoting.errors import RequestError

log = logging.getLogger("pocketmq.remoting")

HandlerResult = RemotingCommand | None | Awaitable[RemotingCommand | None]
Dispatcher = Callable[[RemotingCommand, "Connection"], Awaitable[HandlerResult]]

_READ_SIZE = 256 * 1024
_DRAIN_ON_ERROR_S = 2.0
_PEER_LOST = object()


class Connection:
    """A client connection as the server sees it."""

    _ids = itertools.count(1)

    def __init__(self, stream: ByteStream, peer: tuple[str, int], max_frame_size: int) -> None:
        self.id = next(self._ids)
        self.stream = stream
        self.peer = peer
        self.decoder = FrameDecoder(max_frame_size)
        self.closed = anyio.Event()
        self.attributes: dict[str, Any] = {}  # per-connection state owned by the application
        self._out_send: MemoryObjectSendStream[bytes]
        self._out_recv: MemoryObjectReceiveStream[bytes]
        self._out_send, self._out_recv = anyio.create_memory_object_stream[bytes](math.inf)
        self._opaque = itertools.count(1)
        self._pending: dict[int, anyio.Event | RemotingCommand] = {}
        self._responses: dict[int, RemotingCommand] = {}
        self._writer_done = anyio.Event()
        self._completing = 0  # requests answered by a task of their own, still running

    @property
    def peer_text(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"

    def send(self, cmd: RemotingCommand) -> None:
        """Queue a frame for the writer; silently dropped once the connection is closing (its send side closed) or
        its writer has ended (the receive side closed: the peer is gone, teardown under way)."""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._out_send.send_nowait(encode_frame(cmd))

    @property
    def idle(self) -> bool:
        """No request being completed and nothing waiting to be written."""
        return self._completing == 0 and self._out_send.statistics().current_buffer_used == 0

    def send_oneway(self, cmd: RemotingCommand) -> None:
        cmd.opaque = next(self._opaque)
        cmd.flag |= 0x2
        self.send(cmd)

    async def request(self, cmd: RemotingCommand, timeout: float) -> RemotingCommand:
        """Send a request to the client and wait for its response (TimeoutError after ``timeout``)."""
        cmd.opaque = next(self._opaque)
        done = anyio.Event()
        self._pending[cmd.opaque] = done
        try:
            self.send(cmd)
            with anyio.fail_after(timeout):
                await done.wait()
            return self._responses.pop(cmd.opaque)
        finally:
            self._pending.pop(cmd.opaque, None)

    async def _writer(self, connection_scope: anyio.CancelScope) -> None:
        try:
            if await self._write_all() is _PEER_LOST:
                connection_scope.cancel()  # stop reading too: the connection closes
        finally:
            self._writer_done.set()

    async def _write_all(self) -> object:
        async with self._out_recv:
            async for frame in self._out_recv:
                chunks = [frame]
                while True:
                    try:
                        chunks.append(self._out_recv.receive_nowait())
                    except anyio.WouldBlock:
                        break
                try:
                    await self.stream.send(b"".join(chunks) if len(chunks) > 1 else frame)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as err:
                    # The peer is gone: what is left to write is lost with it. Later sends are dropped.
                    log.info("connection to %s lost while writing: %r", self.peer_text, err)
                    return _PEER_LOST
        return None

    async def _complete(self, request: RemotingCommand, pending: Awaitable[RemotingCommand | None]) -> None:
        try:
            response = await _guarded(request, pending)
            if response is not None and not request.is_oneway:
                self.send(response)
        finally:
            self._completing -= 1

    async def run(self, dispatch: Dispatcher) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, tg.cancel_scope)
                try:
                    await self._read_loop(dispatch, tg)
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self.closed.set()
            self._out_send.close()
            with anyio.CancelScope(shield=True):
                await self.stream.aclose()

    async def _read_loop(self, dispatch: Dispatcher, tg: TaskGroup) -> None:
        while True:
            try:
                data = await self.stream.receive(_READ_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                return
            try:
                commands = self.decoder.feed(data)
            except CodecError as err:
                log.warning("closing connection from %s: unreadable frame: %s", self.peer_text, err)
                return
            await self._dispatch_all(commands, dispatch, tg)
            if self.decoder.failure is not None:
                log.warning("closing connection from %s: unreadable frame: %s", self.peer_text, self.decoder.failure)
                # Let the requests that preceded the bad frame finish (a send waiting for its commit, say).
                with anyio.move_on_after(_DRAIN_ON_ERROR_S):
                    while self._completing:  # noqa: ASYNC110 - brief, only on a broken stream
                        await anyio.sleep(0.005)
                    self._out_send.close()
                    await self._writer_done.wait()
                return

    async def _dispatch_all(self, commands: list[RemotingCommand], dispatch: Dispatcher, tg: TaskGroup) -> None:
        for cmd in commands:
            if cmd.is_response:
                waiter = self._pending.get(cmd.opaque)
                if isinstance(waiter, anyio.Event):
                    self._responses[cmd.opaque] = cmd
                    waiter.set()
                continue
            result = await _guarded(cmd, dispatch(cmd, self))
            if inspect.isawaitable(result):
                self._completing += 1
                tg.start_soon(self._complete, cmd, result)
            elif result is not None and not cmd.is_oneway:
                self.send(result)


async def _guarded(request: RemotingCommand, work: Awaitable[Any]) -> Any:
    """Await a handler step, turning failures into the error response Java would send."""
    try:
        return await work
    except RequestError as err:
        return request.response(err.code, err.remark)
    except CodecError as err:
        return request.response(err.response_code, str(err))
    except Exception as err:  # a bug must not kill the connection: answer like Java's processor catch-all
        log.exception("request code %s from %s failed", request.code, request.language)
        return request.response(ResponseCode.SYSTEM_ERROR, f"{type(err).__name__}: {err}")

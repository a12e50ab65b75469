"""A bare RemotingServer with a test dispatch table, and raw socket clients, for the transport's own tests."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from codec.codes import RequestCode
from codec.command import RemotingCommand, request
from codec.frame import FrameDecoder, encode_frame
from remoting.connection import Connection
from remoting.limits import ConnectionLimits, ConnectionSlots
from remoting.server import DispatchTable, RemotingServer

ECHO = 900  # answered at once, body echoed
HOLD = 901  # answered when the test releases it (server.release())
BOOM = 902  # the handler raises a bug
SLOW = 903  # a coroutine handler that takes 20 ms before it answers


class TestServer:
    def __init__(self, limits: ConnectionLimits, slots: ConnectionSlots) -> None:
        table = DispatchTable()
        table.register(ECHO, self.echo)
        table.register(HOLD, self.hold)
        table.register(BOOM, self.boom)
        table.register(SLOW, self.slow)
        table.register(RequestCode.GET_MAX_OFFSET, self.echo)
        self.held: list[tuple[asyncio.Future[RemotingCommand], RemotingCommand]] = []
        self.served = 0
        self.remoting = RemotingServer("test", table, limits=limits, slots=slots)
        self.connect: Callable[[], Awaitable[RawClient]]  # set by the fixture

    def echo(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        self.served += 1
        return cmd.response(0, body=cmd.body)

    def hold(self, cmd: RemotingCommand, conn: Connection) -> asyncio.Future[RemotingCommand]:
        future: asyncio.Future[RemotingCommand] = asyncio.get_running_loop().create_future()
        self.held.append((future, cmd))
        return future

    def release(self) -> None:
        for future, cmd in self.held:
            if not future.done():
                future.set_result(cmd.response(0))
        self.held.clear()

    async def slow(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        await anyio.sleep(0.02)
        self.served += 1
        return cmd.response(0, body=cmd.body)

    async def boom(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        raise RuntimeError("a bug in a handler")

    @property
    def connections(self) -> set[Connection]:
        return self.remoting.connections


def frame(code: int, body: bytes = b"", opaque: int = 1, oneway: bool = False) -> bytes:
    cmd = request(code, {"topic": "T", "queueId": "0"}, body, oneway=oneway)
    cmd.opaque = opaque
    return encode_frame(cmd)


def raw_frame(header: bytes, body: bytes = b"", serialize_type: int = 0) -> bytes:
    return struct.pack(">iI", 4 + len(header) + len(body), (serialize_type << 24) | len(header)) + header + body


class RawClient:
    """A plain TCP client that can send anything and reads whole frames back."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()
        self.inbox: list[RemotingCommand] = []

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def receive(self, timeout: float = 3.0) -> RemotingCommand:
        with anyio.fail_after(timeout):
            while not self.inbox:
                self.inbox.extend(self.decoder.feed(await self.stream.receive()))
        return self.inbox.pop(0)

    async def call(self, code: int, body: bytes = b"", opaque: int = 1) -> RemotingCommand:
        await self.send(frame(code, body, opaque))
        return await self.receive()

    async def closed_by_server(self, timeout: float = 3.0) -> bool:
        """True once the server has closed this connection (responses before that are skipped)."""
        with anyio.fail_after(timeout):
            try:
                while await self.stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                return True
        return True

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.stream.aclose()


class Kit:
    """What the transport tests share (test modules cannot import each other in importlib mode)."""

    ECHO = ECHO
    HOLD = HOLD
    BOOM = BOOM
    SLOW = SLOW
    frame = staticmethod(frame)
    raw_frame = staticmethod(raw_frame)

    def __init__(self, start: Callable[..., Any]) -> None:
        self.start = start

    @staticmethod
    async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate():  # noqa: ASYNC110 - server state observed from the test
                await anyio.sleep(0.01)


@pytest.fixture
async def kit() -> AsyncIterator[Kit]:
    """``server = await kit.start(limits, slots)``, then ``await server.connect()``; all stopped at teardown."""
    tasks: list[asyncio.Task[None]] = []
    clients: list[RawClient] = []

    async def start(limits: ConnectionLimits | None = None, slots: ConnectionSlots | None = None) -> Any:
        server = TestServer(limits or ConnectionLimits(), slots or ConnectionSlots())
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def host() -> None:
            async with anyio.create_task_group() as tg:
                started.set_result(await tg.start(server.remoting.serve, "127.0.0.1", 0))

        tasks.append(asyncio.create_task(host()))
        port = await started

        async def connect() -> RawClient:
            client = RawClient(await anyio.connect_tcp("127.0.0.1", port))
            clients.append(client)
            return client

        server.connect = connect
        return server

    yield Kit(start)
    for client in clients:
        await client.aclose()
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""A minimal remoting client (the broker uses it to register with name servers; tests use it too)."""

from __future__ import annotations

import itertools

import anyio
from anyio.abc import SocketStream

from codec.codes import MAX_FRAME_SIZE_DEFAULT
from codec.command import RemotingCommand
from codec.frame import FrameDecoder, encode_frame


class RemotingClient:
    """One connection; requests are answered in order of their opaque (no server-initiated requests)."""

    def __init__(self, stream: SocketStream, max_frame_size: int = MAX_FRAME_SIZE_DEFAULT) -> None:
        self.stream = stream
        self.decoder = FrameDecoder(max_frame_size)
        self._opaque = itertools.count(1)
        self._inbox: list[RemotingCommand] = []
        self._lock = anyio.Lock()

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 3.0) -> RemotingClient:
        with anyio.fail_after(timeout):
            stream = await anyio.connect_tcp(host, port)
        return cls(stream)

    async def invoke(self, cmd: RemotingCommand, timeout: float = 3.0) -> RemotingCommand:
        async with self._lock:
            cmd.opaque = next(self._opaque)
            await self.stream.send(encode_frame(cmd))
            with anyio.fail_after(timeout):
                while True:
                    for i, got in enumerate(self._inbox):
                        if got.is_response and got.opaque == cmd.opaque:
                            return self._inbox.pop(i)
                    self._inbox.extend(self.decoder.feed(await self.stream.receive()))

    async def oneway(self, cmd: RemotingCommand) -> None:
        cmd.opaque = next(self._opaque)
        cmd.flag |= 0x2
        await self.stream.send(encode_frame(cmd))

    async def receive(self, timeout: float = 3.0) -> RemotingCommand:
        """Next frame of any kind (used by tests to see server-initiated requests)."""
        with anyio.fail_after(timeout):
            while not self._inbox:
                self._inbox.extend(self.decoder.feed(await self.stream.receive()))
        return self._inbox.pop(0)

    async def aclose(self) -> None:
        await self.stream.aclose()

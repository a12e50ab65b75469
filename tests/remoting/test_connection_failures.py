"""A connection whose peer is gone: writing to it never raises into the server, and the connection closes."""

from __future__ import annotations

import anyio
from anyio.abc import ByteStream

from codec.codes import RequestCode
from codec.command import RemotingCommand, request
from codec.frame import encode_frame
from remoting.connection import Connection
from remoting.server import DispatchTable, RemotingServer


class DeadPeerStream(ByteStream):
    """Delivers the given bytes, then waits for more; every write fails as on a reset socket."""

    def __init__(self, incoming: bytes) -> None:
        self._incoming = incoming
        self.closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._incoming:
            data, self._incoming = self._incoming, b""
            return data
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(self, item: bytes) -> None:
        raise anyio.BrokenResourceError

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True


async def answer(cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
    return cmd.response(0)


async def test_a_failed_write_closes_the_connection_without_raising() -> None:
    stream = DeadPeerStream(encode_frame(request(RequestCode.HEART_BEAT, {})))
    conn = Connection(stream, ("127.0.0.1", 1), 1 << 20)
    with anyio.fail_after(5):
        await conn.run(answer)  # the response's write fails: the connection ends, quietly
    assert stream.closed and conn.closed.is_set()
    conn.send_oneway(request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, {"consumerGroup": "g"}))  # dropped


async def test_sending_to_a_connection_whose_writer_has_ended_is_dropped() -> None:
    stream = DeadPeerStream(b"")
    conn = Connection(stream, ("127.0.0.1", 1), 1 << 20)
    conn._out_recv.close()  # the writer's end, gone while the connection is still being torn down
    conn.send_oneway(request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, {"consumerGroup": "g"}))
    conn._out_send.close()


async def test_a_failing_close_callback_does_not_stop_the_server() -> None:
    closed: list[int] = []
    each_closed = [anyio.Event(), anyio.Event()]

    def on_close(conn: Connection) -> None:
        closed.append(conn.id)
        each_closed[len(closed) - 1].set()
        raise RuntimeError("bug in a close callback")

    table = DispatchTable()
    table.register(RequestCode.HEART_BEAT, answer)
    server = RemotingServer("test", table, max_frame_size=1 << 20, on_close=on_close)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve, "127.0.0.1", 0)
        for n in (1, 2):  # the second connection is served after the first one's callback failed
            async with await anyio.connect_tcp("127.0.0.1", port) as s:
                await s.send(encode_frame(request(RequestCode.HEART_BEAT, {})))
                assert await s.receive()
            with anyio.fail_after(5):
                await each_closed[n - 1].wait()
        tg.cancel_scope.cancel()
    assert len(closed) == 2

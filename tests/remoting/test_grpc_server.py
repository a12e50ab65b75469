"""The gRPC server (h2 on the loop) against grpcio's client: plaintext and TLS on one port, the three call kinds,
status trailers, deadlines, limits, and a broken peer closing only its own connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import h2.config
import h2.connection
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from codec.grpc_frames import Status, encode_message
from remoting.grpc_server import CallContext, GrpcError, GrpcLimits, GrpcServer, Kind, Method
from remoting.grpc_tls import self_signed, server_context

pytestmark = pytest.mark.timeout(60)


async def echo(request: StringValue, ctx: CallContext) -> StringValue:
    if request.value == "fail":
        raise GrpcError(Status.NOT_FOUND, "no such thing: fail ✓")
    if request.value == "crash":
        raise RuntimeError("a bug")
    if request.value == "slow":
        await asyncio.sleep(5)
    return StringValue(value=f"{request.value}|{ctx.local[1]}|{ctx.metadata.get('x-mq-client-id', '')}|{ctx.tls}")


async def count(request: StringValue, ctx: CallContext) -> AsyncIterator[StringValue]:
    for i in range(int(request.value)):
        yield StringValue(value=str(i))


async def chat(requests: AsyncIterator[StringValue], send: Callable, ctx: CallContext) -> None:
    async for request in requests:
        await send(StringValue(value=request.value.upper()))
    await send(StringValue(value="bye"))


METHODS = {
    "/t.S/Echo": Method(Kind.UNARY, StringValue, echo),
    "/t.S/Count": Method(Kind.SERVER_STREAM, StringValue, count),
    "/t.S/Chat": Method(Kind.BIDI, StringValue, chat),
}


class Running:
    """The server on its own loop in a thread, since grpcio's client blocks."""

    def __init__(self, tmp_path: Path, limits: GrpcLimits | None = None) -> None:
        cert, key = self_signed(tmp_path)
        self.cert = cert.read_bytes()
        self.server = GrpcServer(METHODS, tls_context=lambda: server_context(cert, key), limits=limits)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        ready = self.ready

        class Started:
            def started(self, port: int) -> None:
                ready.set()

        task = asyncio.create_task(self.server.serve("127.0.0.1", 0, task_status=Started()))  # type: ignore[arg-type]
        await self.stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def __enter__(self) -> Running:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def plain(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)

    def secure(self) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(root_certificates=self.cert)
        return grpc.secure_channel(self.target, creds, options=[("grpc.ssl_target_name_override", "localhost")])


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with Running(tmp_path) as r:
        yield r


def _unary(channel: grpc.Channel, path: str = "/t.S/Echo"):
    return channel.unary_unary(path, StringValue.SerializeToString, StringValue.FromString)


@pytest.mark.parametrize("secure", [False, True])
def test_unary_calls_over_plaintext_and_tls_on_one_port(running: Running, secure: bool) -> None:
    with running.secure() if secure else running.plain() as channel:
        answer = _unary(channel)(StringValue(value="hi"), metadata=[("x-mq-client-id", "c1")], timeout=5)
    assert answer.value == f"hi|{running.server.port}|c1|{secure}"


def test_status_trailers_carry_the_error(running: Running) -> None:
    with running.plain() as channel:
        with pytest.raises(grpc.RpcError) as err:
            _unary(channel)(StringValue(value="fail"), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "no such thing: fail ✓"
        with pytest.raises(grpc.RpcError) as err:
            _unary(channel)(StringValue(value="crash"), timeout=5)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        with pytest.raises(grpc.RpcError) as err:
            _unary(channel, "/t.S/Nope")(StringValue(value="x"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "/t.S/Nope" in err.value.details()
        # The connection still serves.
        assert _unary(channel)(StringValue(value="ok"), timeout=5).value.startswith("ok|")


def test_the_deadline_ends_a_slow_call(running: Running) -> None:
    with running.plain() as channel:
        with pytest.raises(grpc.RpcError) as err:
            _unary(channel)(StringValue(value="slow"), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_server_streaming_and_bidirectional_calls(running: Running) -> None:
    with running.secure() as channel:
        count_call = channel.unary_stream("/t.S/Count", StringValue.SerializeToString, StringValue.FromString)
        assert [m.value for m in count_call(StringValue(value="5"), timeout=5)] == ["0", "1", "2", "3", "4"]
        chat_call = channel.stream_stream("/t.S/Chat", StringValue.SerializeToString, StringValue.FromString)
        answers = chat_call(iter([StringValue(value="a"), StringValue(value="b")]), timeout=5)
        assert [m.value for m in answers] == ["A", "B", "bye"]


def test_a_message_over_the_limit_is_refused_before_it_is_buffered(tmp_path: Path) -> None:
    with Running(tmp_path, GrpcLimits(max_message_size=1024)) as running, running.plain() as channel:
        with pytest.raises(grpc.RpcError) as err:
            _unary(channel)(StringValue(value="x" * 5000), timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "exceeds the limit of 1024" in err.value.details()
        assert _unary(channel)(StringValue(value="small"), timeout=5).value.startswith("small|")


def test_garbage_closes_only_that_connection(running: Running) -> None:
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as sock:
        sock.sendall(b"\x00\x00\x00\x00 this is not HTTP/2 at all" * 10)
        sock.settimeout(5)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    with running.plain() as channel:
        assert _unary(channel)(StringValue(value="still"), timeout=5).value.startswith("still|")
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a TLS record that is no handshake
        sock.settimeout(5)
        while sock.recv(4096):
            pass
    with running.secure() as channel:
        assert _unary(channel)(StringValue(value="after"), timeout=5).value.startswith("after|")


def test_a_call_still_running_when_the_client_sends_goaway_ends_quietly(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """h2 refuses to send anything once the client's GOAWAY arrived: the call's answer is dropped, not a crash.
    The request and the GOAWAY arrive together, so the call runs before the connection is gone."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/t.S/Echo"), (":authority", "x"),
               ("content-type", "application/grpc"), ("te", "trailers")]  # fmt: skip
    client.send_headers(1, headers)
    client.send_data(1, encode_message(StringValue(value="x").SerializeToString()), end_stream=True)
    client.close_connection()
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as sock:
        sock.sendall(client.data_to_send())
        time.sleep(0.5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    with running.plain() as channel:
        assert _unary(channel)(StringValue(value="after"), timeout=5).value.startswith("after|")

"""One failure stays in its connection: whatever a client sends or does, the listener and every other connection go
on (issue 10, defects 1 and 2, and the failure boundary around handlers and callbacks)."""

from __future__ import annotations

import json
import socket
import struct

import anyio
import pytest

from codec.codes import RequestCode
from codec.command import request
from remoting.limits import ConnectionLimits


async def test_a_deeply_nested_json_header_closes_only_that_connection(kit):
    server = await kit.start()
    bystander = await server.connect()
    bad = await server.connect()
    await bad.send(kit.raw_frame(b"[" * 1000))
    assert await bad.closed_by_server()
    assert (await bystander.call(kit.ECHO, b"still here")).body == b"still here"
    fresh = await server.connect()
    assert (await fresh.call(kit.ECHO, b"new")).body == b"new"


@pytest.mark.parametrize(
    "garbage",
    [struct.pack(">iI", -5, 0), struct.pack(">iI", 2**31 - 1, 0), b"\xde\xad\xbe\xef\x00\x00\x00\x09", b"x" * 8],
    ids=["negative-length", "2GiB-length", "random", "ascii"],
)
async def test_a_valid_request_followed_by_garbage_in_one_write(kit, garbage):
    server = await kit.start()
    bystander = await server.connect()
    client = await server.connect()
    await client.send(kit.frame(RequestCode.GET_MAX_OFFSET, b"first", opaque=7) + garbage)
    answer = await client.receive()
    assert (answer.opaque, answer.body) == (7, b"first")  # the request before the garbage is served
    assert await client.closed_by_server()
    assert (await bystander.call(kit.ECHO, b"ok")).body == b"ok"


async def test_requests_before_an_unreadable_frame_are_answered_even_when_they_complete_later(kit):
    server = await kit.start()
    client = await server.connect()
    await client.send(kit.frame(kit.HOLD, opaque=3) + kit.frame(kit.ECHO, opaque=4) + b"\xff" * 8)
    assert (await client.receive()).opaque == 4
    await kit.eventually(lambda: len(server.held) == 1)
    server.release()
    assert (await client.receive()).opaque == 3
    assert await client.closed_by_server()


async def test_a_handler_bug_is_answered_with_system_error_and_the_connection_stays(kit):
    server = await kit.start()
    client = await server.connect()
    answer = await client.call(kit.BOOM, opaque=5)
    assert (answer.opaque, answer.code) == (5, 1)
    assert "RuntimeError: a bug in a handler" in answer.remark
    assert (await client.call(kit.ECHO, b"after")).body == b"after"


async def test_an_unknown_request_code_is_answered(kit):
    server = await kit.start()
    client = await server.connect()
    answer = await client.call(4242)
    assert (answer.code, answer.remark) == (3, " request type 4242 not supported")


async def test_a_command_with_an_invalid_field_is_refused_without_calling_its_handler(kit):
    """The codec marks a readable frame whose text cannot be stored; the dispatcher answers it."""
    server = await kit.start()
    client = await server.connect()
    header = json.dumps({"code": kit.ECHO, "opaque": 9, "flag": 0, "extFields": {"consumerGroup": "\ud800"}})
    await client.send(kit.raw_frame(header.encode()))
    answer = await client.receive()
    assert (answer.opaque, answer.code) == (9, 29)  # INVALID_PARAMETER
    assert "consumerGroup" in answer.remark
    assert server.served == 0
    assert (await client.call(kit.ECHO, b"next")).body == b"next"


async def test_a_failing_open_or_close_callback_stops_neither_the_listener_nor_other_connections(kit):
    server = await kit.start()
    calls: list[str] = []

    def on_open(conn):
        calls.append("open")
        if len(calls) == 1:
            raise RuntimeError("bug in an open callback")

    def on_close(conn):
        calls.append("close")
        raise RuntimeError("bug in a close callback")

    server.remoting.on_open, server.remoting.on_close = on_open, on_close
    first = await server.connect()
    assert await first.closed_by_server()  # its set-up failed: that connection only is dropped
    second = await server.connect()
    assert (await second.call(kit.ECHO, b"x")).body == b"x"
    await second.aclose()
    await kit.eventually(lambda: calls.count("close") >= 2)
    third = await server.connect()
    assert (await third.call(kit.ECHO, b"y")).body == b"y"


async def test_writing_to_a_connection_whose_peer_is_gone_is_dropped_quietly(kit):
    server = await kit.start()
    client = await server.connect()
    await client.call(kit.ECHO)
    (conn,) = server.connections
    await client.aclose()
    await kit.eventually(lambda: conn.closed.is_set())
    conn.send_oneway(request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, {"consumerGroup": "g"}))  # no error
    conn.send(request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, {"consumerGroup": "g"}))


async def test_a_server_request_to_a_client_that_disconnects_fails_at_once(kit):
    server = await kit.start()
    client = await server.connect()
    await client.call(kit.ECHO)
    (conn,) = server.connections

    async def ask() -> None:
        with pytest.raises(ConnectionError):
            await conn.request(request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, {}), timeout=10)

    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await client.receive()  # the server's request reached the client
            await client.aclose()


async def test_oneway_requests_sent_just_before_the_client_exits_are_all_served(kit):
    server = await kit.start(ConnectionLimits())
    client = await server.connect()
    await client.send(b"".join(kit.frame(kit.ECHO, b"m", opaque=i, oneway=True) for i in range(200)))
    await client.aclose()
    await kit.eventually(lambda: server.served == 200)


async def test_requests_received_before_the_peer_reset_the_connection_are_all_served(kit):
    """A consumer that commits its offsets (oneway) and exits at once, its socket closing with a reset: every
    request that reached the server is served, even those still waiting behind a slow handler."""
    server = await kit.start()
    sock = socket.create_connection(("127.0.0.1", server.remoting.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST
    sock.sendall(b"".join(kit.frame(kit.SLOW, b"c", opaque=i, oneway=True) for i in range(20)))
    await kit.eventually(lambda: server.served >= 1)
    sock.close()
    await kit.eventually(lambda: server.served == 20)


async def test_responses_are_never_sent_for_oneway_requests(kit):
    server = await kit.start()
    client = await server.connect()
    await client.send(kit.frame(kit.ECHO, b"silent", opaque=1, oneway=True) + kit.frame(kit.ECHO, b"loud", opaque=2))
    answer = await client.receive()
    assert (answer.opaque, answer.body) == (2, b"loud")

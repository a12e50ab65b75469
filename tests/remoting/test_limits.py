"""What one client may cost: timeouts, backpressure, requests in flight, connections and the buffer budget (issue
10, defects 4, 5 and 6)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import anyio

from codec.frame import FrameDecoder
from remoting.limits import ConnectionLimits, ConnectionSlots

READ_CHUNK = 256 * 1024  # the most an event loop reads from a socket at once


async def test_a_silent_connection_is_closed_after_the_idle_timeout(kit):
    server = await kit.start(ConnectionLimits(idle_timeout_s=0.3))
    silent = await server.connect()
    talking = await server.connect()
    started = time.monotonic()
    while time.monotonic() - started < 0.8:
        assert (await talking.call(kit.ECHO, b"ping")).body == b"ping"
        await anyio.sleep(0.05)
    assert await silent.closed_by_server(timeout=1)
    assert (await talking.call(kit.ECHO, b"still open")).body == b"still open"


async def test_a_request_being_answered_keeps_its_connection_from_idling_out(kit):
    server = await kit.start(ConnectionLimits(idle_timeout_s=0.2))
    client = await server.connect()
    await client.send(kit.frame(kit.HOLD, opaque=1))
    await anyio.sleep(0.6)
    server.release()
    assert (await client.receive()).opaque == 1


async def test_a_frame_that_trickles_in_is_dropped_after_the_frame_timeout(kit):
    server = await kit.start(ConnectionLimits(frame_timeout_s=0.4))
    slow = await server.connect()
    bystander = await server.connect()
    await slow.send(struct.pack(">iI", 1000, 20))  # announces a 1 KiB frame
    started = time.monotonic()
    with anyio.move_on_after(2):
        try:
            while True:
                await slow.send(b"{")  # one byte every 50 ms: never idle, never finished
                await anyio.sleep(0.05)
        except (anyio.BrokenResourceError, ConnectionError):
            pass  # closed by the server
    assert await slow.closed_by_server(timeout=1)
    assert time.monotonic() - started < 1.5
    assert (await bystander.call(kit.ECHO, b"fine")).body == b"fine"


async def test_a_client_that_never_reads_stops_being_read_and_costs_bounded_memory(kit):
    limits = ConnectionLimits()
    server = await kit.start(limits)
    bystander = await server.connect()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", server.remoting.port))
    body = b"r" * 16 * 1024
    sent = 0
    opaque = 0
    pending = b""
    stalled_since = None
    try:
        with anyio.fail_after(20):
            while True:  # pipeline echo requests until the server stops taking bytes for 0.5 s
                if not pending:
                    opaque += 1
                    pending = kit.frame(kit.ECHO, body, opaque=opaque)
                try:
                    n = sock.send(pending)
                    pending = pending[n:]
                    sent += n
                    stalled_since = None
                except BlockingIOError:
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since > 0.5:
                        break
                    await anyio.sleep(0.01)
        (conn,) = [c for c in server.connections if c.peer[1] == sock.getsockname()[1]]
        assert conn._read_paused
        # Unsent answers stop at the high-water mark plus the answer that crossed it; undecoded requests at the
        # pause threshold plus one read.
        assert conn.transport.get_write_buffer_size() <= limits.write_high_water + len(body) + 1024
        assert conn.decoder.buffered <= limits.read_pause_bytes + READ_CHUNK
        assert sent > 4 * 1024 * 1024  # it really did push a lot more than that at the server
        assert (await bystander.call(kit.ECHO, b"unaffected")).body == b"unaffected"
        assert server.served < opaque
        # Once the client reads, everything it sent is answered, in order.
        sock.setblocking(True)
        sock.settimeout(10)

        def read_all() -> list[int]:
            decoder, opaques = FrameDecoder(), []
            while len(opaques) < opaque:
                opaques += [cmd.opaque for cmd in decoder.feed(sock.recv(1 << 20))]
            return opaques

        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, sock.sendall, pending)
            assert await anyio.to_thread.run_sync(read_all) == list(range(1, opaque + 1))
    finally:
        sock.close()


async def test_requests_in_flight_are_capped_per_connection(kit):
    server = await kit.start(ConnectionLimits(max_requests_in_flight=3))
    client = await server.connect()
    await client.send(b"".join(kit.frame(kit.HOLD, opaque=i) for i in range(1, 6)) + kit.frame(kit.ECHO, opaque=6))
    await kit.eventually(lambda: len(server.held) == 3)
    await anyio.sleep(0.1)
    assert len(server.held) == 3 and server.served == 0  # the rest wait, undecoded
    server.release()
    assert sorted([(await client.receive()).opaque for _ in range(3)]) == [1, 2, 3]
    await kit.eventually(lambda: len(server.held) == 2)
    server.release()
    assert sorted([(await client.receive()).opaque for _ in range(3)]) == [4, 5, 6]


async def test_connections_beyond_the_limit_are_refused_and_the_others_go_on(kit):
    server = await kit.start(slots=ConnectionSlots(max_connections=3))
    clients = [await server.connect() for _ in range(3)]
    for client in clients:
        assert (await client.call(kit.ECHO, b"in")).body == b"in"
    extra = await server.connect()
    assert await extra.closed_by_server()
    assert server.remoting.slots.refused == 1
    await clients[0].aclose()
    await kit.eventually(lambda: server.remoting.slots.open == 2)
    again = await server.connect()
    assert (await again.call(kit.ECHO, b"again")).body == b"again"
    for client in clients[1:]:
        assert (await client.call(kit.ECHO, b"still")).body == b"still"


async def test_large_frames_wait_for_the_buffer_budget_and_then_complete(kit):
    slots = ConnectionSlots(max_buffered_bytes=1024 * 1024)
    server = await kit.start(ConnectionLimits(max_frame_size=4 * 1024 * 1024), slots)
    first, second = await server.connect(), await server.connect()
    big = kit.frame(kit.ECHO, b"a" * 900 * 1024, opaque=1)
    other = kit.frame(kit.ECHO, b"b" * 900 * 1024, opaque=2)
    await first.send(big[:100_000])
    await kit.eventually(lambda: slots.reserved >= 900 * 1024)
    await second.send(other[:100_000])
    await kit.eventually(lambda: len(slots.starved) == 1)  # it does not fit: that connection waits
    assert slots.reserved <= 1024 * 1024
    small = await server.connect()
    assert (await small.call(kit.ECHO, b"small")).body == b"small"  # small frames never wait
    await first.send(big[100_000:])
    assert (await first.receive()).opaque == 1
    await second.send(other[100_000:])
    assert (await second.receive()).opaque == 2
    await kit.eventually(lambda: slots.reserved == 0)

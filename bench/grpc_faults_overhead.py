"""What gRPC fault rules cost a unary call: a trivial QueryRoute handler on the gRPC server's connection, no
socket, calls one after another, in rounds that alternate the modes so drift hits all of them.

    python bench/grpc_faults_overhead.py [--calls 20000] [--rounds 5] [--modes off,rule]
    POCKETMQ_CHECKOUT=/work/main python bench/grpc_faults_overhead.py --modes off    (another checkout's code)

Two measures per mode: ``path``, the server's call path alone (decode the request, the fault check, the handler;
the answer's framing left out), and ``call``, a whole call with HTTP/2 frames in memory, the client's framing
included (h2 on both sides: most of it, and the same in every mode). Modes: ``off`` (no gRPC rule: the server's
``intercept`` is None), ``rule`` (one gRPC rule for QueryRoute of another topic: the call's facts are read and the
rule checked; it does not fire). Prints the median CPU microseconds (this process's: other load on the machine
counts less) of each. ``off`` runs against any checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events

sys.path.insert(0, os.environ.get("POCKETMQ_CHECKOUT") or str(Path(__file__).resolve().parents[1]))

from codec.grpc_frames import MessageDecoder, encode_message
from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from remoting.grpc_server import CallContext, GrpcConnection, GrpcServer, Kind, Method, _Stream

PATH = "/apache.rocketmq.v2.MessagingService/QueryRoute"
METADATA = [(b"x-mq-client-id", b"bench-client"), (b"x-mq-language", b"JAVA")]


async def query_route(request: s.QueryRouteRequest, context: Any) -> s.QueryRouteResponse:
    return s.QueryRouteResponse(status=d.Status(code=d.OK, message="OK"))


class _Transport:
    """What GrpcConnection uses of a transport: writes are kept for the client to read."""

    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 9) if name in ("peername", "sockname") else default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class _Client:
    def __init__(self, server: GrpcServer) -> None:
        self.transport = _Transport()
        self.conn = GrpcConnection(server, asyncio.get_running_loop())
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.request = encode_message(s.QueryRouteRequest(topic=d.Resource(name="BenchT")).SerializeToString())

    async def call(self) -> None:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", PATH.encode()),
                   (b":authority", b"bench"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
                   *METADATA]  # fmt: skip
        self.h2.send_headers(stream_id, headers)
        self.h2.send_data(stream_id, self.request, end_stream=True)
        self.conn.data_received(self.h2.data_to_send())
        while True:
            await asyncio.sleep(0)
            if not self.transport.out:
                continue
            data, self.transport.out = bytes(self.transport.out), bytearray()
            events = self.h2.receive_data(data)
            for event in events:
                if isinstance(event, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            reply = self.h2.data_to_send()
            if reply:
                self.conn.data_received(reply)
            if any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id for e in events):
                return


def set_mode(server: GrpcServer, mode: str) -> None:
    if mode == "off":
        server.intercept = None
        return
    from gateway.grpc.faults import CallFaults
    from remoting.faults import FaultInjector

    injector = FaultInjector()
    injector.add({"method": "QueryRoute", "topic": "NotThisOne", "respond": "TOO_MANY_REQUESTS"})
    server.intercept = CallFaults(injector)


class _Unsent(GrpcConnection):
    async def _send_message(self, stream: _Stream, response: Any) -> None:
        pass


async def path_us(server: GrpcServer, calls: int) -> float:
    """The call path without the answer's framing: GrpcConnection._call on one decoded-once stream, again and
    again."""
    conn = _Unsent(server, asyncio.get_running_loop())
    metadata = {k.decode(): v.decode() for k, v in METADATA}
    context = CallContext(("127.0.0.1", 9), ("127.0.0.1", 8081), metadata, None, False, 1)
    raw = s.QueryRouteRequest(topic=d.Resource(name="BenchT")).SerializeToString()
    stream = _Stream(1, server.methods[PATH], context, MessageDecoder(1 << 20), requests=[raw], path=PATH)
    for _ in range(500):
        await conn._call(stream)
    started = time.process_time()
    for _ in range(calls):
        await conn._call(stream)
    return (time.process_time() - started) / calls * 1e6


async def call_us(server: GrpcServer, calls: int) -> float:
    client = _Client(server)
    for _ in range(200):  # warm up; also reaches steady flow-control windows
        await client.call()
    started = time.process_time()
    for _ in range(calls):
        await client.call()
    client.conn.connection_lost(None)
    return (time.process_time() - started) / calls * 1e6


async def main(calls: int, rounds: int, modes: list[str]) -> None:
    server = GrpcServer({PATH: Method(Kind.UNARY, s.QueryRouteRequest, query_route)})
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for mode in modes:
            set_mode(server, mode)
            results.setdefault(("path", mode), []).append(await path_us(server, calls))
            results.setdefault(("call", mode), []).append(await call_us(server, max(1, calls // 10)))
    for (measure, mode), values in sorted(results.items(), reverse=True):
        rounded = ", ".join(f"{v:.2f}" for v in values)
        print(f"{measure} {mode:4} median {statistics.median(values):8.2f} us  (rounds: {rounded})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", default="off,rule")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds, args.modes.split(",")))

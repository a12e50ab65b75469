"""The protocol trace of gRPC calls (grpcio's client): one line per call with client, method, status, topic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import grpc
import pytest

from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from remoting.trace_ring import LiveFilter

SERVICE = "/apache.rocketmq.v2.MessagingService/"
pytestmark = pytest.mark.timeout(60)


def unary(port: int, method: str, request: Any, response_type: Any) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(SERVICE + method, type(request).SerializeToString, response_type.FromString)
        metadata = [("x-mq-client-id", "grpc-client-1"), ("x-mq-language", "PYTHON"), ("x-mq-client-version", "5.0.1")]
        return call(request, metadata=metadata, timeout=5)


async def test_grpc_calls_are_traced(cluster: Any, tmp_path: Path) -> None:
    await cluster.start_namesrv()
    broker = await cluster.start_broker(grpc_port=0)
    with anyio.fail_after(10):
        await broker.grpc_settled.wait()
    assert broker.grpc_server.observer is None  # nothing installed while the trace is off
    path = tmp_path / "trace.jsonl"
    broker.hooks.trace_on(path)
    assert broker.grpc_server.observer is not None
    route = s.QueryRouteRequest(topic=d.Resource(name="GrpcTraceT"))
    answer = await anyio.to_thread.run_sync(unary, broker.grpc_port, "QueryRoute", route, s.QueryRouteResponse)
    assert answer.status.code == d.OK
    message = d.Message(topic=d.Resource(name="GrpcTraceT"), body=b"traced",
                        system_properties=d.SystemProperties(message_id="01AABBCCDD0000000000000009",
                                                             message_type=d.NORMAL))  # fmt: skip
    send = s.SendMessageRequest(messages=[message])
    sent = await anyio.to_thread.run_sync(unary, broker.grpc_port, "SendMessage", send, s.SendMessageResponse)
    assert sent.status.code == d.OK, sent
    await anyio.to_thread.run_sync(broker.hooks.trace_off().close)
    assert broker.grpc_server.observer is None
    live = broker.hooks.live.recent(0, 10, LiveFilter()).entries
    assert [(e["method"], e["statusName"]) for _seq, e in live] == [("QueryRoute", "OK"), ("SendMessage", "OK")]
    line, send_line = [json.loads(x) for x in path.read_text().splitlines()]
    assert (send_line["method"], send_line["topic"], send_line["fields"]["messages"]) == (
        "SendMessage",
        "GrpcTraceT",
        1,
    )
    assert (line["proto"], line["dir"], line["method"], line["statusName"]) == ("grpc", "call", "QueryRoute", "OK")
    assert (line["client"], line["lang"], line["ver"]) == ("grpc-client-1", "PYTHON", "5.0.1")
    assert (
        line["topic"] == "GrpcTraceT"
        and line["conn"].startswith("g")
        and line["body"] == len(route.SerializeToString())
    )
    assert line["latencyMs"] >= 0 and line["fields"]["topic"] == "GrpcTraceT"

"""Fault rules on gRPC calls over the wire (grpcio's client, the transport of the 5.x SDKs): each action, matching on
topic, group, client id and language, the server's streams cleaned up after a dropped answer, and nothing
installed while there is no gRPC rule."""

from __future__ import annotations

import functools
import time
from typing import Any

import anyio
import grpc
import pytest

from codec.codes import GRPC_METHODS, RequestCode
from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from pocketmq import cli
from remoting.trace_ring import LiveFilter
from tests.gateway.test_grpc_service import SERVICE, Client, _message, _receive_request, in_thread

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def grpc_broker(cluster: Any) -> Any:
    await cluster.start_namesrv()
    broker = await cluster.start_broker(grpc_port=0, http_port=0)
    with anyio.fail_after(10):
        await broker.grpc_settled.wait()
        await broker.http_settled.wait()
    return broker


def rule(broker: Any, **fields: Any) -> Any:
    return broker.hooks.faults.add(fields)


def send_request(topic: str, body: bytes = b"x", n: int = 0) -> s.SendMessageRequest:
    return s.SendMessageRequest(messages=[_message(topic, body, f"01AABBCCDD{n:016X}")])


def route(topic: str) -> s.QueryRouteRequest:
    return s.QueryRouteRequest(topic=d.Resource(name=topic))


async def open_streams(broker: Any, wanted: int) -> int:
    """The calls open on the server, once they are ``wanted`` or 5 s have passed (a reset takes a moment)."""

    def count() -> int:
        return sum(len(conn.streams) for conn in broker.grpc_server.connections)

    with anyio.move_on_after(5):
        while count() != wanted:  # noqa: ASYNC110 - set by the server's protocol callbacks
            await anyio.sleep(0.02)
    return count()


async def test_nothing_installed_without_a_grpc_rule(grpc_broker: Any) -> None:
    server, table = grpc_broker.grpc_server, grpc_broker.server.dispatch
    assert sorted(path.rsplit("/", 1)[-1] for path in server.methods) == sorted(GRPC_METHODS)  # what rules may name
    plain = table.handlers[RequestCode.SEND_MESSAGE_V2]
    assert server.intercept is None
    remoting = rule(grpc_broker, code="SEND_MESSAGE_V2", respond="SYSTEM_BUSY")
    assert server.intercept is None  # a remoting rule leaves gRPC calls alone
    grpc_broker.hooks.faults.remove(remoting.id)
    added = rule(grpc_broker, method="SendMessage", respond="TOO_MANY_REQUESTS")
    assert server.intercept is not None and table.handlers[RequestCode.SEND_MESSAGE_V2] is plain
    grpc_broker.hooks.faults.remove(added.id)
    assert server.intercept is None


async def test_respond_answers_with_the_v2_status_instead_of_sending(grpc_broker: Any) -> None:
    client = Client(grpc_broker.grpc_port)
    added = rule(grpc_broker, method="SendMessage", topic="GF", respond="TOO_MANY_REQUESTS", remark="slow", times=1)
    refused = await in_thread(client.unary, "SendMessage", send_request("GF", b"one"), s.SendMessageResponse)
    assert (refused.status.code, refused.status.message) == (
        d.TOO_MANY_REQUESTS,
        f"[pocketmq fault rule {added.id}] injected TOO_MANY_REQUESTS: slow",
    )
    assert list(refused.entries) == []  # as the proxy answers a call it refuses: only the status
    sent = await in_thread(client.unary, "SendMessage", send_request("GF", b"two", 1), s.SendMessageResponse)
    assert sent.status.code == d.OK
    responses = await in_thread(client.receive, _receive_request("GF", "gf-g"))
    assert [r.message.body for r in responses[1:-1]] == [b"two"]  # the refused send was not stored
    assert (added.matched, added.injected, added.exhausted) == (1, 1, True)


async def test_the_trace_shows_the_answered_status_and_the_rule(grpc_broker: Any) -> None:
    """A refused call ends with gRPC status OK (the refusal is in the message): the trace line names both."""
    client = Client(grpc_broker.grpc_port)
    grpc_broker.hooks.live_on()
    added = rule(grpc_broker, method="SendMessage", topic="GFT", respond="TOO_MANY_REQUESTS", times=1)
    for n in range(2):
        await in_thread(client.unary, "SendMessage", send_request("GFT", n=n), s.SendMessageResponse)
    grpc_broker.hooks.trace_off()
    calls = [e for _, e in grpc_broker.hooks.live.recent(0, 100, LiveFilter()).entries if e["method"] == "SendMessage"]
    assert [(e["statusName"], e["code"], e["name"], e.get("fault")) for e in calls] == [
        ("OK", d.TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", f"fault rule {added.id}"),
        ("OK", d.OK, "OK", None),
    ]


async def test_a_refused_receive_is_one_status_then_the_end(grpc_broker: Any) -> None:
    client = Client(grpc_broker.grpc_port)
    sent = await in_thread(client.unary, "SendMessage", send_request("GFR"), s.SendMessageResponse)
    assert sent.status.code == d.OK
    added = rule(grpc_broker, method="ReceiveMessage", group="gfr-g", respond="TOO_MANY_REQUESTS", times=1)
    [refused] = await in_thread(client.receive, _receive_request("GFR", "gfr-g"))
    assert refused.status.code == d.TOO_MANY_REQUESTS and not refused.HasField("message")
    responses = await in_thread(client.receive, _receive_request("GFR", "gfr-g"))
    assert [r.message.body for r in responses[1:-1]] == [b"x"]  # nothing was taken by the refused receive
    assert added.injected == 1


async def test_matches_topic_group_client_and_language(grpc_broker: Any) -> None:
    python = Client(grpc_broker.grpc_port, "client-A")  # language PYTHON
    rule(grpc_broker, method="QueryRoute", topic="Other", respond="FORBIDDEN")
    rule(grpc_broker, method="QueryRoute", language="GO", respond="FORBIDDEN")
    rule(grpc_broker, method="QueryAssignment", group="other-g", respond="FORBIDDEN")
    by_client = rule(grpc_broker, method="QueryRoute,QueryAssignment", clientId="client-B", respond="FORBIDDEN")
    assert (await in_thread(python.unary, "QueryRoute", route("GFM"), s.QueryRouteResponse)).status.code == d.OK
    assign = s.QueryAssignmentRequest(topic=d.Resource(name="GFM"), group=d.Resource(name="gfm-g"))
    assert (await in_thread(python.unary, "QueryAssignment", assign, s.QueryAssignmentResponse)).status.code == d.OK
    other = await in_thread(python.unary, "QueryRoute", route("Other"), s.QueryRouteResponse)
    assert other.status.code == d.FORBIDDEN
    b = Client(grpc_broker.grpc_port, "client-B")
    assert (await in_thread(b.unary, "QueryAssignment", assign, s.QueryAssignmentResponse)).status.code == d.FORBIDDEN
    assert (by_client.matched, by_client.injected) == (1, 1)
    go = grpc_broker.hooks.faults.rules[1]
    python.metadata[1] = ("x-mq-language", "GO")
    assert (await in_thread(python.unary, "QueryRoute", route("GFM"), s.QueryRouteResponse)).status.code == d.FORBIDDEN
    assert go.injected == 1


async def test_delay_holds_the_answer_not_the_connection(grpc_broker: Any) -> None:
    client = Client(grpc_broker.grpc_port)
    rule(grpc_broker, method="QueryRoute", delayMs=600)
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(in_thread, client.unary, "QueryRoute", route("GFD"), s.QueryRouteResponse)
        await anyio.sleep(0.1)
        heartbeat = await in_thread(client.unary, "Heartbeat", s.HeartbeatRequest(), s.HeartbeatResponse)
        assert heartbeat.status.code == d.UNRECOGNIZED_CLIENT_TYPE  # answered at once on the same channel
        assert time.monotonic() - started < 0.5
    assert time.monotonic() - started >= 0.6


async def test_drop_runs_the_call_and_never_answers(grpc_broker: Any) -> None:
    client = Client(grpc_broker.grpc_port)
    added = rule(grpc_broker, method="SendMessage", drop=True, times=1)
    call = client.channel.unary_unary(SERVICE + "SendMessage", s.SendMessageRequest.SerializeToString,
                                      s.SendMessageResponse.FromString)  # fmt: skip
    with pytest.raises(grpc.RpcError) as lost:
        await in_thread(functools.partial(call, send_request("GFX"), metadata=client.metadata, timeout=1))
    assert lost.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    responses = await in_thread(client.receive, _receive_request("GFX", "gfx-g"))
    assert [r.message.body for r in responses[1:-1]] == [b"x"]  # the send was stored: its answer was lost
    assert added.injected == 1 and await open_streams(grpc_broker, 0) == 0


async def test_a_dropped_call_is_cleaned_up_when_the_client_resets_it_or_leaves(grpc_broker: Any) -> None:
    client = Client(grpc_broker.grpc_port)
    rule(grpc_broker, method="QueryRoute", drop=True)
    call = client.channel.unary_unary(SERVICE + "QueryRoute", s.QueryRouteRequest.SerializeToString,
                                      s.QueryRouteResponse.FromString)  # fmt: skip
    pending = [call.future(route("GFC"), metadata=client.metadata) for _ in range(3)]  # no deadline
    assert await open_streams(grpc_broker, 3) == 3
    [conn] = grpc_broker.grpc_server.connections
    calls = list(conn.streams.values())
    pending[0].cancel()  # RST_STREAM
    assert await open_streams(grpc_broker, 2) == 2
    client.channel.close()  # the connection goes
    with anyio.fail_after(5):
        while grpc_broker.grpc_server.connections:  # noqa: ASYNC110 - connection_lost removes it
            await anyio.sleep(0.05)
    assert all(p.cancelled() or p.exception() is not None for p in pending)
    assert all(call.task is not None and call.task.done() for call in calls)


async def test_close_closes_the_connection_instead(grpc_broker: Any) -> None:
    client = Client(grpc_broker.grpc_port)
    assert (await in_thread(client.unary, "QueryRoute", route("GFK"), s.QueryRouteResponse)).status.code == d.OK
    [conn] = grpc_broker.grpc_server.connections
    added = rule(grpc_broker, method="QueryRoute", close=True, times=1)
    with pytest.raises(grpc.RpcError) as closed:
        await in_thread(client.unary, "QueryRoute", route("GFK"), s.QueryRouteResponse)
    assert closed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert conn not in grpc_broker.grpc_server.connections and added.injected == 1
    again = await in_thread(client.unary, "QueryRoute", route("GFK"), s.QueryRouteResponse)  # a new connection
    assert again.status.code == d.OK


async def test_api_cli_and_metrics_show_grpc_rules(grpc_broker: Any, capsys: pytest.CaptureFixture[str]) -> None:
    http = ["--http", f"127.0.0.1:{grpc_broker.http_port}"]

    async def pocketmq(*argv: str) -> int:
        args = cli.parser().parse_args(list(argv))
        return await anyio.to_thread.run_sync(functools.partial(cli.cli_hooks.run, args))

    assert await pocketmq("fault", "add", "--method", "SendMessage", "--respond", "TOO_MANY_REQUESTS", "--times",
                          "1", *http) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert '"method": ["SendMessage"], "respond": "TOO_MANY_REQUESTS", "times": 1' in out, out
    assert await pocketmq("fault", "add", "--method", "SendMessage", "--respond", "SYSTEM_BUSY", *http) == 1
    assert "SYSTEM_BUSY'; that is a remoting response code" in capsys.readouterr().err
    assert await pocketmq("fault", "add", "--method", "Send", "--code", "SEND_MESSAGE", "--drop", *http) == 1
    assert "not both" in capsys.readouterr().err
    client = Client(grpc_broker.grpc_port)
    refused = await in_thread(client.unary, "SendMessage", send_request("GFA"), s.SendMessageResponse)
    assert refused.status.code == d.TOO_MANY_REQUESTS
    assert await pocketmq("fault", "list", *http) == 0
    assert "(matched 1, injected 1, exhausted)" in capsys.readouterr().out

    def scrape() -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{grpc_broker.http_port}/metrics", timeout=10) as answer:
            return answer.read().decode()

    labels = 'action="respond",broker="broker-a",cluster="DefaultCluster",rule="1"'
    assert f"pocketmq_faults_injected_total{{{labels}}} 1.0" in await in_thread(scrape)


async def test_a_stream_gets_its_first_message_late_or_one_status(grpc_broker: Any) -> None:
    client = Client(grpc_broker.grpc_port)
    sent = await in_thread(client.unary, "SendMessage", send_request("GFS"), s.SendMessageResponse)
    assert sent.status.code == d.OK
    rule(grpc_broker, method="ReceiveMessage", delayMs=700, times=1)
    started = time.monotonic()
    responses = await in_thread(client.receive, _receive_request("GFS", "gfs-g"))
    assert time.monotonic() - started >= 0.7 and [r.message.body for r in responses[1:-1]] == [b"x"]
    refused = rule(grpc_broker, method="Telemetry", clientId="test-client-1", respond="BAD_REQUEST", times=1)
    call = client.channel.stream_stream(SERVICE + "Telemetry", s.TelemetryCommand.SerializeToString,
                                        s.TelemetryCommand.FromString)  # fmt: skip
    settings = s.TelemetryCommand(settings=d.Settings(client_type=d.PRODUCER))

    def telemetry() -> list[s.TelemetryCommand]:
        return list(call(iter([settings]), metadata=client.metadata, timeout=5))  # every message, to the end

    [answer] = await in_thread(telemetry)
    assert answer.status.code == d.BAD_REQUEST and answer.status.message.endswith("injected BAD_REQUEST")
    assert refused.injected == 1

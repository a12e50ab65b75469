"""The HTTP port's request handling on its own: GET and POST routes, bounded heads and bodies, and a clear JSON
error for every refusal."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import anyio
import pytest

from codec import jsonbody
from gateway import http_endpoint
from gateway.http_endpoint import HttpEndpoint, HttpError, HttpRequest, HttpResponse, json_response

pytestmark = pytest.mark.timeout(30)


async def _echo(request: HttpRequest) -> HttpResponse:
    fields = request.json()
    if "name" not in fields:
        raise HttpError(400, "name is required")
    return json_response({"hello": fields["name"], "query": request.query, "peer": request.peer[0]})


async def _status(request: HttpRequest) -> HttpResponse:
    return json_response({"ok": True, "query": request.query})


async def _broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """The endpoint in a task of its own (no cancel scope may be held across the fixture's yield)."""
    endpoint = HttpEndpoint({("GET", "/status"): _status, ("POST", "/echo"): _echo, ("GET", "/broken"): _broken})
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def host() -> None:
        async with anyio.create_task_group() as tg:
            started.set_result(await tg.start(endpoint.serve, "127.0.0.1", 0))

    task = asyncio.create_task(host())
    try:
        yield await started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"  # sent to a client that asked (Expect) before its body came
    head, _, body = (answer[len(interim) :] if answer.startswith(interim) else answer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def _post(path: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


async def ask(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    return await anyio.to_thread.run_sync(_exchange, port, raw)


async def test_get_with_a_query_and_post_with_a_json_body(port: int) -> None:
    status, headers, body = await ask(port, b"GET /status?topic=T%25x&queueId=2 HTTP/1.1\r\n\r\n")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert jsonbody.loads(body) == {"ok": True, "query": {"topic": "T%x", "queueId": "2"}}
    status, _, body = await ask(port, _post("/echo", b'{"name": "pocketmq"}'))
    assert status == 200 and jsonbody.loads(body)["hello"] == "pocketmq"
    assert jsonbody.loads(body)["peer"] == "127.0.0.1"
    status, headers, body = await ask(port, b"HEAD /status HTTP/1.1\r\n\r\n")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (_post("/echo", b"{not json"), 400, "not valid JSON"),
        (_post("/echo", b"[1, 2]"), 400, "must be a JSON object"),
        (_post("/echo", b"{}"), 400, "name is required"),
        (_post("/echo", b""), 400, "has no body"),
        (_post("/echo", b'{"name": 1}', content_type="text/plain"), 415, "application/json"),
        (b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}", 411, "Content-Length"),
        (_post("/echo", b"{}", extra="Transfer-Encoding: chunked\r\n"), 501, "chunked"),
        (b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n", 400, "not a number"),
        (b"GET /nowhere HTTP/1.1\r\n\r\n", 404, "no /nowhere"),
        (b"POST /status HTTP/1.1\r\n\r\n", 405, "only GET"),
        (b"GET /echo HTTP/1.1\r\n\r\n", 405, "only POST"),
        (b"GET /broken HTTP/1.1\r\n\r\n", 500, "see its log"),
        (b"\x16\x03\x01 garbage\r\n\r\n", 400, "not an HTTP/1.x request line"),
        (b"GET /status HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header"),
        (b"GET /status?" + b"&".join(b"a%d=1" % i for i in range(70)) + b" HTTP/1.1\r\n\r\n", 400, "query parameters"),
    ],
)
async def test_refusals_are_json_with_a_reason(port: int, raw: bytes, status: int, says: str) -> None:
    got, headers, body = await ask(port, raw)
    assert got == status, body
    assert headers["Content-Type"] == "application/json"
    assert says in jsonbody.loads(body)["error"]


async def test_a_body_over_the_limit_is_refused_before_it_is_read(port: int) -> None:
    raw = (
        "POST /echo HTTP/1.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {http_endpoint.MAX_BODY_BYTES + 1}\r\n\r\n"
    ).encode()
    status, _, body = await ask(port, raw)  # nothing of the body is sent: the answer comes at once
    assert status == 413 and b"more than" in body


async def test_a_body_of_exactly_the_limit_is_read(port: int) -> None:
    payload = b'{"name": "' + b"x" * (http_endpoint.MAX_BODY_BYTES - 12) + b'"}'
    assert len(payload) == http_endpoint.MAX_BODY_BYTES
    status, _, body = await ask(port, _post("/echo", payload, extra="Expect: 100-continue\r\n"))
    assert status == 200, body[:200]


async def test_an_oversized_head_is_refused(port: int) -> None:
    status, _, _ = await ask(port, b"GET /status HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n")
    assert status == 431


async def test_a_body_that_never_arrives_times_out(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_endpoint, "REQUEST_TIMEOUT_S", 0.5)
    raw = b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    with anyio.fail_after(5):
        status, _, body = await ask(port, raw)
    assert status == 408 and b"in time" in body


async def test_the_port_stays_bounded_when_full(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections past MAX_CONNECTIONS are closed at once; the port serves again when they go."""
    monkeypatch.setattr(http_endpoint, "REQUEST_TIMEOUT_S", 1.0)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(http_endpoint.MAX_CONNECTIONS)]
    try:
        await anyio.sleep(0.2)

        def refused() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                try:
                    s.sendall(b"GET /status HTTP/1.1\r\n\r\n")
                    return s.recv(100)
                except ConnectionResetError:  # closed unread: the kernel answers the request with a reset
                    return b""

        assert await anyio.to_thread.run_sync(refused) == b""
    finally:
        for s in idle:
            s.close()
    await anyio.sleep(0.3)
    status, _, _ = await ask(port, b"GET /status HTTP/1.1\r\n\r\n")
    assert status == 200


async def test_a_slow_answer_is_a_503_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_endpoint, "HANDLER_TIMEOUT_S", 0.2)

    async def slow(request: HttpRequest) -> HttpResponse:
        await anyio.sleep(10)
        return json_response({})

    endpoint = HttpEndpoint({("GET", "/slow"): slow})
    async with anyio.create_task_group() as tg:
        port = await tg.start(endpoint.serve, "127.0.0.1", 0)
        with anyio.fail_after(5):
            status, _, body = await ask(port, b"GET /slow HTTP/1.1\r\n\r\n")
        tg.cancel_scope.cancel()
    assert status == 503 and b"did not answer within 0.2 s" in body

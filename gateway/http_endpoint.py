"""The broker's HTTP port (``--http-port``, default 8087: clear of Apache's 8080 dashboard, 8081 proxy and 5557
exporter): ``GET /metrics`` for Prometheus, the JSON admin API and the web console. One request per connection,
answered and closed. The head must arrive within ``MAX_HEAD_BYTES``; a POST carries a JSON body of at most
``MAX_BODY_BYTES`` announced by Content-Length; the whole request must arrive within the timeout; at most
``MAX_CONNECTIONS`` are served at once. So a client can neither hold the port nor make the process grow (at most
64 times 1 MiB of bodies in memory).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import anyio
from anyio.abc import SocketStream, TaskStatus

from codec import jsonbody

log = logging.getLogger("pocketmq.http")

MAX_HEAD_BYTES = 8 * 1024
MAX_BODY_BYTES = 1024 * 1024
REQUEST_TIMEOUT_S = 5.0  # to receive a request, and again to send its answer
HANDLER_TIMEOUT_S = 30.0  # to answer it (a send waits for its group commit; a lookup may scan many topics)
MAX_CONNECTIONS = 64
JSON = "application/json"

STATUS_TEXT = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    409: "Conflict", 411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable",
}  # fmt: skip


class HttpError(Exception):
    """A request refused with an HTTP status and a message for the caller (sent as ``{"error": message}``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    peer: tuple[str, int] = ("127.0.0.1", 0)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object, or HttpError 400 saying what is wrong with it."""
        if not self.body:
            raise HttpError(400, "the request has no body; send a JSON object")
        try:
            value = jsonbody.loads(self.body)
        except Exception as err:
            raise HttpError(400, f"the body is not valid JSON: {err}") from None
        if not isinstance(value, dict):
            raise HttpError(400, f"the body must be a JSON object, not {type(value).__name__}")
        return value


@dataclass(slots=True)
class HttpResponse:
    content_type: str
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
Routes = dict[tuple[str, str], Handler]  # (method, path) -> handler; a GET route also answers HEAD


def json_response(value: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(JSON, jsonbody.dumps(value), status)


def error_response(status: int, message: str) -> HttpResponse:
    return json_response({"error": message}, status)


def _encode(response: HttpResponse, *, head_only: bool = False) -> bytes:
    reason = STATUS_TEXT.get(response.status, "Status")
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        "X-Content-Type-Options: nosniff",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


class HttpEndpoint:
    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.paths = {path for _method, path in routes}
        self._slots = anyio.Semaphore(MAX_CONNECTIONS)

    async def serve(self, host: str, port: int, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port, reuse_port=False)
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        async with listener:
            await listener.serve(self._connection)

    async def _connection(self, stream: SocketStream) -> None:
        async with stream:
            if self._slots.value == 0:
                return  # full: closed at once
            async with self._slots:
                try:
                    with anyio.fail_after(REQUEST_TIMEOUT_S):
                        request, handler = await self._read(stream)
                except TimeoutError:
                    answer = _encode(error_response(408, "the request did not arrive in time"))
                except HttpError as err:
                    answer = _encode(error_response(err.status, err.message))
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
                else:
                    answer = await self._answer(request, handler)
                with anyio.move_on_after(REQUEST_TIMEOUT_S):
                    await stream.send(answer)

    async def _read(self, stream: SocketStream) -> tuple[HttpRequest, Handler]:
        """The request and its handler; its body is read only once the route and content type are known good."""
        request, early_body = await _read_head(stream)
        request.peer = _peer_of(stream)
        handler = self.routes.get(("GET" if request.method == "HEAD" else request.method, request.path))
        if handler is None:
            if request.path in self.paths:
                allowed = sorted({m for m, p in self.routes if p == request.path})
                raise HttpError(405, f"{request.method} {request.path}: only {', '.join(allowed)}")
            raise HttpError(404, f"no {request.path}; see / for the console and docs/admin.md")
        if request.method == "POST" and request.headers.get("content-type", "").split(";")[0].strip() != JSON:
            # Also what keeps other web sites out: a cross-site form cannot send application/json without CORS.
            raise HttpError(415, "a POST must carry Content-Type: application/json")
        request.body = await _read_body(stream, request, early_body)
        return request, handler

    async def _answer(self, request: HttpRequest, handler: Handler) -> bytes:
        response = error_response(503, f"the broker did not answer within {HANDLER_TIMEOUT_S:g} s")
        try:
            with anyio.move_on_after(HANDLER_TIMEOUT_S):
                response = await handler(request)
        except HttpError as err:
            response = error_response(err.status, err.message)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = error_response(500, "the broker failed to answer; see its log")
        return _encode(response, head_only=request.method == "HEAD")


def _peer_of(stream: SocketStream) -> tuple[str, int]:
    try:
        address = stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return ("127.0.0.1", 0)
    return (str(address[0]), int(address[1])) if isinstance(address, tuple) else ("127.0.0.1", 0)


async def _read_head(stream: SocketStream) -> tuple[HttpRequest, bytes]:
    """The request line and headers (at most ``MAX_HEAD_BYTES``), and whatever of the body came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            raise HttpError(431, f"the request head is over {MAX_HEAD_BYTES} bytes")
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    if len(head) > MAX_HEAD_BYTES:
        raise HttpError(431, f"the request head is over {MAX_HEAD_BYTES} bytes")
    return _parse_head(head), body


async def _read_body(stream: SocketStream, request: HttpRequest, early: bytes) -> bytes:
    """Exactly Content-Length bytes (at most ``MAX_BODY_BYTES``); a POST must announce its length."""
    if "transfer-encoding" in request.headers:
        raise HttpError(501, "chunked bodies are not accepted; send Content-Length")
    length_text = request.headers.get("content-length")
    if length_text is None:
        if request.method == "POST":
            raise HttpError(411, "a POST needs a Content-Length header")
        return b""
    if not length_text.isdigit():
        raise HttpError(400, f"Content-Length {length_text[:40]!r} is not a number")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"the body is {length} bytes, more than {MAX_BODY_BYTES}")
    if len(early) < length and request.headers.get("expect", "").lower() == "100-continue":
        await stream.send(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits a second for this before a large body
    chunks, received = [early], len(early)
    while received < length:
        chunk = await stream.receive()
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)[:length]


def _parse_head(head: bytes) -> HttpRequest:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise HttpError(400, "not an HTTP/1.x request line")
    method, target = parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace")
    path, _, query_text = target.partition("?")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HttpError(400, f"malformed header line {line[:40]!r}")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    try:
        query = dict(parse_qsl(query_text, keep_blank_values=True, max_num_fields=64))
    except ValueError:
        raise HttpError(400, "more than 64 query parameters") from None
    return HttpRequest(method, unquote(path), query, headers)

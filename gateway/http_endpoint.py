"""The broker's HTTP port (``--http-port``, default 8087: clear of Apache's 8080 dashboard, 8081 proxy and 5557
exporter): ``GET /metrics`` for Prometheus. One request per connection, answered and closed; a request that does
not arrive whole within the timeout or is larger than the limit is refused, and at most ``MAX_CONNECTIONS`` are
served at once, so a client can neither hold the port nor make the process grow.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import SocketStream, TaskStatus

log = logging.getLogger("pocketmq.http")

MAX_REQUEST_BYTES = 8 * 1024
REQUEST_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64

Route = Callable[[], Awaitable[tuple[str, bytes]]]  # -> (content type, body)


def _answer(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _text(status: str, text: str) -> bytes:
    return _answer(status, "text/plain; charset=utf-8", text.encode())


class HttpEndpoint:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
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
                    answer = await self._handle(stream)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
                with anyio.move_on_after(REQUEST_TIMEOUT_S):
                    await stream.send(answer)

    async def _handle(self, stream: SocketStream) -> bytes:
        data = b""
        with anyio.move_on_after(REQUEST_TIMEOUT_S) as scope:
            while b"\r\n\r\n" not in data and len(data) <= MAX_REQUEST_BYTES:
                data += await stream.receive()
        if scope.cancelled_caught:
            return _text("408 Request Timeout", "the request did not arrive in time\n")
        if len(data) > MAX_REQUEST_BYTES and b"\r\n\r\n" not in data:
            return _text("431 Request Header Fields Too Large", f"the request is over {MAX_REQUEST_BYTES} bytes\n")
        parts = data.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _text("400 Bad Request", "not an HTTP/1.x request line\n")
        method, target = parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace")
        path = target.split("?", 1)[0]
        route = self.routes.get(path)
        if route is None:
            return _text("404 Not Found", f"no {path}; try {', '.join(sorted(self.routes))}\n")
        if method not in ("GET", "HEAD"):
            return _text("405 Method Not Allowed", f"{method} {path}: only GET\n")
        try:
            content_type, body = await route()
        except Exception:
            log.exception("GET %s failed", path)
            return _text("500 Internal Server Error", "see the broker's log\n")
        answer = _answer("200 OK", content_type, body)
        return answer[: answer.index(b"\r\n\r\n") + 4] if method == "HEAD" else answer

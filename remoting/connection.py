"""One remoting connection: an asyncio protocol that decodes frames as they arrive, dispatches requests in arrival
order, writes answers straight to the transport, and keeps one client's cost bounded.

A handler returns a response, None (nothing to send), or an awaitable that completes later (a send waiting for
its group commit, a long-polled pull); a handler may itself be a coroutine function. Requests are dispatched one
after another: everything a handler does before it returns (assigning queue offsets, for instance) happens in
arrival order, and while a coroutine handler runs, later requests wait as undecoded bytes. Returned awaitables
complete on their own, so a held pull never blocks the connection.

Backpressure: the connection stops reading when the transport's unsent output is above its high-water mark
(Netty's channelWritabilityChanged, as Apache's server does), when it already has ``max_requests_in_flight``
requests unanswered, when it holds ``read_pause_bytes`` it cannot serve yet, or when a large frame does not fit
the process's buffer budget. Nothing a connection does can raise into the event loop or the listener: any
failure is logged once with the peer and closes that connection only.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import anyio

from codec.codes import ResponseCode
from codec.command import RemotingCommand
from codec.errors import CodecError
from codec.frame import FrameDecoder, encode_frame
from remoting.errors import RequestError
from remoting.limits import ConnectionLimits, ConnectionSlots
from runtime.completion import Completion
from runtime.logs import RateLimitedLog

if TYPE_CHECKING:
    from remoting.server import RemotingServer

log = logging.getLogger("pocketmq.remoting")

HandlerResult = RemotingCommand | None | Awaitable[RemotingCommand | None] | Completion[RemotingCommand]


@dataclass(slots=True, frozen=True)
class Step:
    """What a plain handler returns when it must wait before it can finish (an auto-created topic being saved,
    say): ``work`` runs as a step that later requests on the connection wait for, exactly as if the handler had
    been a coroutine function, so the common case pays for no task and the rare one keeps arrival order."""

    work: Coroutine[Any, Any, Any]


Dispatcher = Callable[[RemotingCommand, "Connection"], HandlerResult | Awaitable[HandlerResult]]

# Frames up to this size never wait for the process's buffer budget, so small requests always get through.
LARGE_FRAME = 64 * 1024
# After an unreadable frame, how long the requests that preceded it may take to be answered.
DRAIN_ON_CLOSE_S = 2.0

# Handler failures that are the client's or the environment's doing (a full disk, say) are answered and logged
# as one line; this keeps a failing store from flooding the log with one line per request.
_expected_failures = RateLimitedLog(log, interval_s=10.0)
# Closed connections (unreadable frames, timeouts): logged with their peer, at most 20 lines per 10 s.
_closings = RateLimitedLog(log, interval_s=10.0, burst=20)
# Bugs: logged with their traceback, but a client that keeps triggering one cannot flood the log.
_bugs = RateLimitedLog(log, interval_s=10.0, burst=10)


class Connection(asyncio.Protocol):
    """A client connection as the server sees it."""

    _ids = itertools.count(1)

    def __init__(self, server: RemotingServer) -> None:
        self.id = next(self._ids)
        self.server = server
        # Made by the server's protocol factory, on the loop. Kept: asyncio.get_running_loop() is a getpid()
        # system call on CPython 3.11, once per request on the hot path.
        self._loop = asyncio.get_running_loop()
        self.limits: ConnectionLimits = server.limits
        self.slots: ConnectionSlots = server.slots
        self.decoder = FrameDecoder(self.limits.max_frame_size)
        self.peer: tuple[str, int] = ("?", 0)
        self.attributes: dict[str, Any] = {}  # per-connection state owned by the application
        self.closed = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self._admitted = False
        self._pending: dict[int, asyncio.Future[RemotingCommand]] = {}  # our own requests, by opaque
        self._opaque = itertools.count(1)
        self._busy = False  # a coroutine handler is running; later requests wait
        self._in_flight = 0  # requests dispatched and not yet answered
        self._write_paused = False
        self._read_paused = False
        self._starved = False  # waiting for the process's buffer budget
        self._closing = False  # no more requests are taken; closes once the in-flight ones are answered
        self._eof = False  # the peer sent its last bytes
        self._lost = False  # the transport is gone; what was received is still served, answers are dropped
        self._reserved = 0  # bytes of the process's buffer budget this connection holds
        self._scopes: set[anyio.CancelScope] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._out: list[bytes] | None = None  # frames to write at the end of this round of the event loop
        self._out_bytes = 0
        self.last_io = 0.0  # loop time of the last read or write
        self.frame_started: float | None = None  # loop time a still-incomplete frame began to arrive
        self.write_paused_since: float | None = None

    # ---- identity ------------------------------------------------------------------------------------

    @property
    def peer_text(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"

    @property
    def idle(self) -> bool:
        """No request being answered and nothing waiting to be written."""
        unsent = self.transport.get_write_buffer_size() if self.transport is not None else 0
        return self._in_flight == 0 and not self._busy and unsent == 0 and not self._out

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # ---- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio subclasses
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = (str(peer[0]), int(peer[1]))
        self.last_io = self._now()
        if not self.slots.admit(self.peer_text):
            self._closing = True
            transport.close()
            return
        self._admitted = True
        transport.set_write_buffer_limits(high=self.limits.write_high_water, low=self.limits.write_low_water)
        self.server.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        try:
            if self._closing:
                return
            self.last_io = self._now()
            self.decoder.push(data)
            self._pump()
        except Exception as err:
            self._fail("internal error while reading", err)

    def eof_received(self) -> bool:
        # The peer is gone (clients never half-close). Serve what it sent before (a producer that sends oneway and
        # exits at once loses nothing), then close: held pulls are cancelled, sends being stored still complete.
        self._eof = True
        try:
            self._pump()
        except Exception as err:
            self._fail("internal error after end of stream", err)
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self.write_paused_since = self._now()
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self.write_paused_since = None
        try:
            self._pump()
        except Exception as err:
            self._fail("internal error while resuming", err)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._write_paused = False
        self.closed.set()
        for scope in self._scopes:
            scope.cancel()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"connection to {self.peer_text} closed"))
        self._pending.clear()
        if self._starved:
            self.slots.starved.discard(self)
        if self._admitted:
            self._admitted = False
            self.slots.release()
            self.server.connection_closed(self)
        try:
            # Requests received before the peer vanished (a producer's last oneway sends, a consumer's offset
            # commits at shutdown) are still served, unless this side closed the connection on purpose.
            if not self._closing:
                self._pump()
        except Exception as err:
            self._fail("internal error after the connection closed", err)
        finally:
            self._release_budget()

    # ---- writing -------------------------------------------------------------------------------------

    def send(self, cmd: RemotingCommand) -> None:
        """Write a frame; silently dropped once the connection is closed.

        Frames sent during one round of the event loop are written together at its end: a group commit answers
        many sends of a connection at once, and one write system call for all of them is much cheaper than one
        each."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        frame = encode_frame(cmd)
        self._out_bytes += len(frame)
        if self._out is None:
            self._out = [frame]
            self.server.unflushed.add(self)  # written by flush_writes, or at the latest on the next round
            self._loop.call_soon(self.write_pending)
        else:
            self._out.append(frame)

    def write_pending(self, *, pump: bool = True) -> None:
        """Write this round's answers (``pump``: then take the requests that waited for them)."""
        self.server.unflushed.discard(self)
        out, self._out = self._out, None
        self._out_bytes = 0
        transport = self.transport
        if not out or transport is None or transport.is_closing():
            return
        try:
            if len(out) == 1:
                transport.write(out[0])
            else:
                transport.writelines(out)
            self.last_io = self._now()
            if pump and self.decoder.has_frame and not self._busy:
                self._pump()  # it may have stopped for the answers of this round: they are written now
        except Exception as err:
            self._fail("internal error while writing", err)

    def resume_after_flush(self) -> None:
        """After ``write_pending(pump=False)``: take the requests that waited for the written answers."""
        if self.decoder.has_frame and not self._busy and not self._closing:
            try:
                self._pump()
            except Exception as err:
                self._fail("internal error after writing", err)

    def _close_transport(self) -> None:
        """Close gracefully: what was answered is written first."""
        self.write_pending()
        if self.transport is not None:
            self.transport.close()

    def send_oneway(self, cmd: RemotingCommand) -> None:
        cmd.opaque = next(self._opaque)
        cmd.flag |= 0x2
        self.send(cmd)

    async def request(self, cmd: RemotingCommand, timeout: float) -> RemotingCommand:
        """Send a request to the client and wait for its response (TimeoutError after ``timeout``)."""
        cmd.opaque = next(self._opaque)
        future: asyncio.Future[RemotingCommand] = self._loop.create_future()
        if self._closing:
            raise ConnectionError(f"connection to {self.peer_text} is closing")
        self._pending[cmd.opaque] = future
        try:
            self.send(cmd)
            with anyio.fail_after(timeout):
                return await future
        finally:
            self._pending.pop(cmd.opaque, None)

    # ---- reading and dispatching ---------------------------------------------------------------------

    def _pump(self) -> None:
        """Decode and dispatch buffered requests for as long as the connection may take another one."""
        while self._can_dispatch():
            try:
                cmd = self.decoder.next_command()
            except CodecError as err:
                _closings.warning("closing connection from %s: unreadable frame: %s", self.peer_text, err)
                self._close_after_draining()
                return
            if cmd is None:
                break
            if cmd.is_response:
                self._resolve(cmd)
            else:
                self._dispatch(cmd)
        if self._lost:
            return
        if self._eof and not self._busy and not self.decoder.has_frame and self.transport is not None:
            self._closing = True
            self._close_transport()
            return
        self._update_reading()

    def _can_dispatch(self) -> bool:
        """Whether the next request may be dispatched now. Not while a step runs, while the client's answers back
        up (the transport's unsent bytes plus this round's answers, written at its end, reach the high-water mark),
        with too many requests in flight, or once the connection is closing."""
        if self._busy or self._write_paused or self._closing or self._in_flight >= self.limits.max_requests_in_flight:
            return False
        unsent = self.transport.get_write_buffer_size() if self.transport is not None else 0
        return unsent + self._out_bytes < self.limits.write_high_water

    def _resolve(self, response: RemotingCommand) -> None:
        future = self._pending.get(response.opaque)
        if future is not None and not future.done():
            future.set_result(response)

    def _dispatch(self, cmd: RemotingCommand) -> None:
        if cmd.invalid is not None:
            self._answer(cmd, cmd.response(ResponseCode.INVALID_PARAMETER, cmd.invalid))
            return
        handler, is_step = self.server.dispatch.resolve(cmd.code)
        try:
            result = handler(cmd, self)
        except Exception as err:
            result = error_response(cmd, err)
        if isinstance(result, Step):
            self._busy = True
            self._spawn(self._run_handler(cmd, result.work), cancellable=False)
        elif is_step and inspect.iscoroutine(result):
            self._busy = True
            # Not cancelled when the peer leaves: what a handler does before it returns (validating and encoding a
            # send, say) always completes, as for requests answered without a task.
            self._spawn(self._run_handler(cmd, result), cancellable=False)
        else:
            self._finish(cmd, result)

    async def _run_handler(self, cmd: RemotingCommand, step: Coroutine[Any, Any, HandlerResult]) -> None:
        try:
            result = await _guarded(cmd, step)
        finally:
            self._busy = False
        self._finish(cmd, result)
        self._after_answer()

    def _finish(self, cmd: RemotingCommand, result: HandlerResult) -> None:
        if result is None or isinstance(result, RemotingCommand):
            self._answer(cmd, result)
            return
        self._in_flight += 1
        if isinstance(result, Completion | asyncio.Future):
            result.add_done_callback(functools.partial(self._future_done, cmd))
        else:
            self._spawn(self._complete(cmd, result), cancellable=True)

    async def _complete(self, cmd: RemotingCommand, pending: Awaitable[RemotingCommand | None]) -> None:
        try:
            response = await _guarded(cmd, pending)
        finally:
            self._in_flight -= 1
        self._answer(cmd, response)
        self._after_answer()

    def _future_done(
        self, cmd: RemotingCommand, future: asyncio.Future[RemotingCommand | None] | Completion[RemotingCommand]
    ) -> None:
        self._in_flight -= 1
        try:
            if future.cancelled():
                response: RemotingCommand | None = None
            elif (err := future.exception()) is not None:
                response = error_response(cmd, err)
            else:
                response = future.result()
            self._answer(cmd, response)
            self._after_answer()
        except Exception as err:
            self._fail("internal error while answering", err)

    def _answer(self, cmd: RemotingCommand, response: RemotingCommand | None) -> None:
        if response is not None and not cmd.is_oneway:
            self.send(response)

    def _after_answer(self) -> None:
        if self._closing and not self._lost:
            if self._in_flight == 0 and not self._busy and self.transport is not None:
                self._close_transport()
        else:
            self._pump()

    def _spawn(self, work: Coroutine[Any, Any, None], *, cancellable: bool) -> None:
        task = self._loop.create_task(self._scoped(work) if cancellable else self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _scoped(self, work: Coroutine[Any, Any, None]) -> None:
        # An anyio scope, not Task.cancel(): closing the connection cancels held pulls, while a send's shielded
        # store step still completes (Task.cancel would break through anyio's shield).
        with anyio.CancelScope() as scope:
            if self._lost:
                scope.cancel()  # completing after the peer left: cancelled at its first unshielded wait
            self._scopes.add(scope)
            try:
                await self._guard(work)
            finally:
                self._scopes.discard(scope)

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as err:
            self._fail("internal error", err)

    # ---- flow control --------------------------------------------------------------------------------

    def _update_reading(self) -> None:
        """Pause or resume reading from the socket to match what the connection can take."""
        if self.transport is None:
            return
        buffered = self.decoder.buffered
        pause = (
            self._closing or self._write_paused or (buffered >= self.limits.read_pause_bytes and self.decoder.has_frame)
        )
        if not pause:
            pause = not self._reserve(max(self.decoder.pending_frame_size, buffered))
        if pause != self._read_paused:
            self._read_paused = pause
            if pause:
                self.transport.pause_reading()
            elif not self.transport.is_closing():
                self.transport.resume_reading()
        partial = buffered > 0 and not self.decoder.has_frame
        if not partial or pause:
            self.frame_started = None  # a paused connection's frame cannot progress: not the client's fault
        elif self.frame_started is None:
            self.frame_started = self._now()

    def _reserve(self, wanted: int) -> bool:
        """Hold ``wanted`` bytes of the process's budget for a large frame; False (starved) when it does not fit."""
        if wanted <= LARGE_FRAME:
            wanted = 0
        if wanted <= self._reserved:
            if wanted < self._reserved:
                self._release_budget(self._reserved - wanted)
            return True
        if not self.slots.reserve(wanted - self._reserved):
            self._starved = True
            self.slots.starved.add(self)
            return False
        self._reserved = wanted
        if self._starved:
            self._starved = False
            self.slots.starved.discard(self)
        return True

    def _release_budget(self, amount: int | None = None) -> None:
        amount = self._reserved if amount is None else amount
        if amount <= 0:
            return
        self._reserved -= amount
        for conn in self.slots.free(amount):
            conn._update_reading()

    # ---- closing -------------------------------------------------------------------------------------

    def _close_after_draining(self) -> None:
        """Take no more requests; close once those already taken are answered, or after DRAIN_ON_CLOSE_S."""
        if self._closing or self.transport is None:
            return
        self._closing = True
        self._update_reading()
        if self._in_flight == 0 and not self._busy:
            self._close_transport()
            return
        self._loop.call_later(DRAIN_ON_CLOSE_S, self._drain_expired)

    def _drain_expired(self) -> None:
        if not self.closed.is_set():
            _closings.info(
                "closing connection from %s: its last requests took over %g s", self.peer_text, DRAIN_ON_CLOSE_S
            )
            self.abort()

    def close(self, reason: str) -> None:
        """Close now (what was written is still sent); logged as one line naming the peer and the reason."""
        if self.transport is not None and not self.transport.is_closing():
            _closings.info("closing connection from %s: %s", self.peer_text, reason)
            self._closing = True
            self._close_transport()

    def abort(self) -> None:
        if self.transport is not None:
            self._closing = True
            self.transport.abort()

    def _fail(self, what: str, err: BaseException) -> None:
        """A bug in serving this connection: log it once with the peer, drop the connection, keep the server."""
        if not self.closed.is_set():
            _bugs.error("closing connection from %s: %s: %r", self.peer_text, what, err, exc_info=err)
        self.abort()

    def check_timers(self, now: float) -> None:
        """Called about once a second by the server: enforce the frame, write and idle timeouts."""
        limits = self.limits
        if self._closing:
            return
        if self.frame_started is not None and now - self.frame_started > limits.frame_timeout_s:
            self.close(
                f"a frame began arriving {now - self.frame_started:.0f} s ago and is still incomplete "
                f"({self.decoder.buffered} of {self.decoder.pending_frame_size} bytes; serverFrameReadTimeoutSeconds"
                f" {limits.frame_timeout_s:g})"
            )
        elif self.write_paused_since is not None and now - self.write_paused_since > limits.idle_timeout_s:
            self.close(
                f"it has not read its responses for {now - self.write_paused_since:.0f} s "
                f"(serverChannelMaxIdleTimeSeconds {limits.idle_timeout_s:g})"
            )
        elif now - self.last_io > limits.idle_timeout_s and self._in_flight == 0 and not self._busy:
            self.close(
                f"idle for {now - self.last_io:.0f} s (serverChannelMaxIdleTimeSeconds {limits.idle_timeout_s:g})"
            )

    def _now(self) -> float:
        return self.server.clock()


def error_response(request: RemotingCommand, err: BaseException) -> RemotingCommand:
    """The answer Java would send for a failed request: the error's own code, or SYSTEM_ERROR for a bug."""
    if isinstance(err, RequestError):
        return request.response(err.code, err.remark)
    code = getattr(err, "response_code", None)
    if isinstance(code, int):
        # A codec error, a full disk, ...: expected failures, one log line (rate-limited), no traceback.
        if not isinstance(err, CodecError):
            _expected_failures.warning("request code %s failed: %s", request.code, err)
        return request.response(code, str(err))
    _bugs.error("request code %s from %s failed", request.code, request.language, exc_info=err)
    return request.response(ResponseCode.SYSTEM_ERROR, f"{type(err).__name__}: {err}")


async def _guarded(request: RemotingCommand, work: Awaitable[Any]) -> Any:
    """Await a handler step, turning failures into the error response Java would send."""
    try:
        return await work
    except Exception as err:
        return error_response(request, err)

"""A result that arrives later and is handed to its callbacks at once.

``asyncio.Future`` runs its done-callbacks on a later round of the event loop. On the send path that cost more
than the hop itself: the group commit's answer went through three such hops (store future, send answer,
connection write), and in each round the loop first read and handled newly arrived requests, so a batch's answer
waited behind up to three later batches while its client sat idle. A ``Completion`` calls its callbacks inside
``set_result``/``set_exception``, so a commit answers its sends, and the connection writes them, in one go.

It offers the part of the Future interface its users need (done, cancelled, result, exception,
add_done_callback) and can be awaited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

_PENDING = object()


class Completion(Generic[T]):
    __slots__ = ("_callbacks", "_error", "_value")

    def __init__(self) -> None:
        self._value: Any = _PENDING
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Completion[T]], None]] = []

    def done(self) -> bool:
        return self._value is not _PENDING or self._error is not None

    def cancelled(self) -> bool:
        return False

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        if self._value is _PENDING:
            raise asyncio.InvalidStateError("the result is not set yet")
        return self._value  # type: ignore[no-any-return]

    def exception(self) -> BaseException | None:
        if self._value is _PENDING and self._error is None:
            raise asyncio.InvalidStateError("the result is not set yet")
        return self._error

    def set_result(self, value: T) -> None:
        self._settle(value, None)

    def set_exception(self, error: BaseException) -> None:
        self._settle(_PENDING, error)

    def _settle(self, value: Any, error: BaseException | None) -> None:
        if self._value is not _PENDING or self._error is not None:
            raise asyncio.InvalidStateError("the result is already set")
        self._value, self._error = value, error
        if self._callbacks:
            self._run_callbacks()

    def add_done_callback(self, callback: Callable[[Completion[T]], None]) -> None:
        if self.done():
            self._call(callback)
        else:
            self._callbacks.append(callback)

    def _run_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            self._call(callback)

    def _call(self, callback: Callable[[Completion[T]], None]) -> None:
        # As asyncio does for a future's callbacks: a failing callback is logged and the others still run.
        try:
            callback(self)
        except Exception:
            log.exception("a completion callback failed: %r", callback)

    def __await__(self) -> Generator[Any, None, T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def copy(done: Completion[T]) -> None:
            if future.done():
                return
            if done._error is not None:
                future.set_exception(done._error)
            else:
                future.set_result(done._value)

        self.add_done_callback(copy)
        return future.__await__()

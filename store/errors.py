"""Errors raised by the message store, independent of the storage engine behind it.

Each carries the RocketMQ ``ResponseCode`` a broker answers with when a request fails with it (``response_code``,
as ``codec.errors.CodecError`` does); the broker's dispatcher answers with that code and ``str(err)`` as remark.
"""

from __future__ import annotations

from codec.codes import ResponseCode


class StoreError(Exception):
    """A store operation failed; nothing it would have written was kept."""

    response_code: ResponseCode = ResponseCode.SYSTEM_ERROR


class StoreClosed(StoreError):
    """The store is not open: ``open()`` was not awaited yet, or ``close()`` has begun.

    Retriable elsewhere: Apache answers SERVICE_NOT_AVAILABLE while its message store is shut down."""

    response_code = ResponseCode.SERVICE_NOT_AVAILABLE


class StorageUnavailable(StoreError):
    """The disk refused a write: it is full, or failing with an I/O error (what ENOSPC turns into).

    Nothing of the failed write was kept and no offset was used up; writes succeed again by themselves once space
    is freed. Apache's broker answers a send on a full disk with the retriable SERVICE_NOT_AVAILABLE (its
    ``PutMessageStatus.SERVICE_NOT_AVAILABLE`` while ``RunningFlags`` has the disk-full bit set)."""

    response_code = ResponseCode.SERVICE_NOT_AVAILABLE


class FlushFailed(StoreError):
    """SYNC_FLUSH: the messages were stored, but the fsync that makes them survive power loss failed. Answered as
    Apache answers a sync flush that did not complete (FLUSH_DISK_TIMEOUT)."""

    response_code = ResponseCode.FLUSH_DISK_TIMEOUT


class AlreadyResolved(StoreError):
    """A hand-over or commit found its target no longer pending (a scheduled message already delivered, a half
    message already committed or rolled back): nothing was written, so nothing is delivered twice."""


class UnstorableValue(StoreError):
    """A value the store cannot write: text that is not encodable as UTF-8 (a lone surrogate such as ``"\\ud800"``),
    or a number outside SQLite's signed 64-bit range. Refused where it enters the store, naming the field, so that
    it never reaches a write shared with other rows."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        super().__init__(f"{field} {_shortened(value)} cannot be stored: {problem}")
        self.field = field


def _shortened(value: object, limit: int = 80) -> str:
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

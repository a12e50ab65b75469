"""Errors raised by the message store, independent of the storage engine behind it."""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed; nothing it would have written was kept."""


class StoreClosed(StoreError):
    """The store is not open: ``open()`` was not awaited yet, or ``close()`` has begun."""

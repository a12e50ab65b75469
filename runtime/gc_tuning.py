"""Garbage-collector settings for a long-running server.

Every message allocates a handful of short-lived objects (a command, its header dict, a future, the response),
so with CPython's default threshold (a young collection every 700 net allocations) the collector ran several
times per batch of requests, and every tenth young collection also walked the older generation. The objects of a
request are freed by reference counting; few form cycles. A larger young threshold and the start-up objects
frozen out of every collection (``gc.freeze``) cut that work, while cyclic garbage is still collected.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # net allocations between young collections (CPython's default: 700)
OLDER_THRESHOLDS = (20, 20)


def tune_for_server() -> None:
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def freeze_startup_objects() -> None:
    """Move everything alive now (modules, configuration, caches) to the permanent generation."""
    gc.collect()
    gc.freeze()

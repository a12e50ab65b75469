"""Timestamps and durations from clients, checked: protobuf's ``ToMilliseconds`` raises on a value out of range (the
Python 5.1.2 client sends a delivery time's milliseconds as seconds), and that must be the caller's clear error."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

MAX_TIMESTAMP_S = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a Timestamp may hold
MAX_DURATION_S = 315_576_000_000  # 10,000 years, the longest Duration


def timestamp_ms(value: Timestamp, field: str) -> int:
    """Milliseconds since the epoch; ValueError naming ``field`` when it is no valid Timestamp."""
    if not 0 <= value.seconds <= MAX_TIMESTAMP_S or not 0 <= value.nanos < 1_000_000_000:
        raise ValueError(
            f"{field} is not a valid time: {value.seconds} s {value.nanos} ns (seconds since 1970, up to"
            f" {MAX_TIMESTAMP_S}; a time in milliseconds sent as seconds looks like this)"
        )
    return value.seconds * 1000 + value.nanos // 1_000_000


def duration_ms(value: Duration) -> int:
    """Milliseconds, clamped to what a Duration may hold (a negative duration stays negative for the caller)."""
    seconds = max(-MAX_DURATION_S, min(value.seconds, MAX_DURATION_S))
    return seconds * 1000 + value.nanos // 1_000_000

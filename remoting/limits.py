"""What one client may cost the server: per-connection limits and the process-wide connection and buffer budget.

Apache's broker relies on Netty for most of this (an all-idle handler closes silent channels after
``serverChannelMaxIdleTimeSeconds``; ``writeBufferHighWaterMark`` turns auto-read off while a channel's output
is backed up). pocketmq enforces the same two with the same names and defaults, and adds what a process that
holds everything in one heap needs: a bounded number of requests in flight per connection, a deadline for a
frame that has started to arrive, a cap on the bytes received but not yet served across all connections, and a
maximum number of connections kept below the file-descriptor limit.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from remoting.connection import Connection

from codec.codes import MAX_FRAME_SIZE_DEFAULT
from runtime.logs import RateLimitedLog

log = logging.getLogger("pocketmq.remoting")

# File descriptors kept free for the store (database, WAL, shared memory), logs and the broker's own outgoing
# connections (registration with name servers) when the connection limit is derived from RLIMIT_NOFILE.
FD_RESERVE = 64


@dataclass(slots=True)
class ConnectionLimits:
    """Per-server limits; each has a broker.conf key (Apache's name where Apache has the setting)."""

    max_frame_size: int = MAX_FRAME_SIZE_DEFAULT  # NettyDecoder's frameMaxLength (16 MiB)
    idle_timeout_s: float = 120.0  # serverChannelMaxIdleTimeSeconds: nothing read or written for this long
    frame_timeout_s: float = 60.0  # serverFrameReadTimeoutSeconds: a started frame must arrive whole by then
    write_high_water: int = 64 * 1024  # writeBufferHighWaterMark: stop reading above this many unsent bytes
    write_low_water: int = 32 * 1024  # writeBufferLowWaterMark: read again below this
    max_requests_in_flight: int = 1024  # serverMaxRequestsInFlight: per connection, dispatched but unanswered
    read_pause_bytes: int = 256 * 1024  # undecoded bytes a connection may hold while it cannot be served


class ConnectionSlots:
    """The budget shared by every listener of one process: open connections and bytes received but unserved.

    ``pocketmq up`` gives its name server and broker one instance, since they share the fd limit and the heap.
    """

    def __init__(self, max_connections: int | None = None, max_buffered_bytes: int = 256 * 1024 * 1024) -> None:
        fd_bound = fd_limit() - FD_RESERVE
        if max_connections is None:
            max_connections = fd_bound
        elif max_connections > fd_bound:
            log.warning(
                "serverMaxConnections %d is above what the file-descriptor limit allows; using %d",
                max_connections,
                fd_bound,
            )
            max_connections = fd_bound
        self.max_connections = max(1, max_connections)
        self.max_buffered_bytes = max_buffered_bytes
        self.open = 0
        self.reserved = 0  # bytes of large frames being received, across connections
        self.starved: set[Connection] = set()  # connections waiting for budget to receive a large frame
        self.refused = 0
        self._refusals = RateLimitedLog(log, interval_s=10.0)
        self._starving = RateLimitedLog(log, interval_s=10.0)

    def admit(self, peer: str) -> bool:
        if self.open >= self.max_connections:
            self.refused += 1
            self._refusals.warning(
                "refusing connections: %d are open, the limit is %d (serverMaxConnections); last from %s",
                self.open,
                self.max_connections,
                peer,
            )
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def reserve(self, amount: int) -> bool:
        """Take ``amount`` bytes of the buffer budget; False when they do not fit (the caller stops reading)."""
        if self.reserved + amount > self.max_buffered_bytes and self.reserved > 0:
            self._starving.warning(
                "large frames in progress hold %d bytes, the budget is %d (serverMaxBufferedBytes): "
                "connections wait to receive theirs",
                self.reserved,
                self.max_buffered_bytes,
            )
            return False
        self.reserved += amount
        return True

    def free(self, amount: int) -> list[Connection]:
        """Give budget back; returns the connections that were waiting for it (the caller lets them retry)."""
        self.reserved -= amount
        waiting = list(self.starved)
        self.starved.clear()
        return waiting


def fd_limit() -> int:
    """The soft RLIMIT_NOFILE, raised to the hard limit first (as Go's runtime and many servers do)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY:
        return hard
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as err:
            log.info("could not raise the open-file limit from %d to %d: %s", soft, hard, err)
    return soft

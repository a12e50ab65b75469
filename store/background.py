"""The store's work that must not run on the event loop: WAL checkpoints and, for SYNC_FLUSH, fsyncs of the WAL.

The store commits on the event-loop thread (a commit in WAL mode with ``synchronous=NORMAL`` is a write to the OS
page cache, which is what survives ``kill -9``); handing every statement to another thread, as aiosqlite does,
costs two thread wake-ups per call, about 200 µs of CPU each on the 2-core VMs this runs on. What may block for
milliseconds runs here instead, on one thread with its own connection:

- checkpoints (``PRAGMA wal_checkpoint(PASSIVE)``: copy committed pages into the database file and fsync it,
  never blocking the writer), about once a second and whenever asked;
- starting the WAL over: SQLite rewrites the WAL from its start only when a write transaction begins right after a
  checkpoint that copied every frame. Under a steady load a checkpoint never finishes between two group commits
  (they are a millisecond apart), so the WAL grew without end (800 MB in 10 s of batches), every commit writing
  to new file pages and every read searching a larger WAL index. Once the WAL passes ``RESTART_WAL_BYTES``, this
  thread first catches up (checkpoints again until one takes under ``SHORT_CHECKPOINT_S``: what is left to copy
  is what was committed while the last one ran), then asks the store to hold its commits, copies the few frames
  left, and lets them go: the next commit starts the WAL over. Commits wait that long (a small checkpoint and an
  fsync), about once per ``RESTART_WAL_BYTES`` written; in exchange the WAL stays within that size and in page
  cache it already has. Holding without catching up first stalled every sender for 80-145 ms every two seconds
  under a batch load (that checkpoint copied what came during the one before and synced every page copied since
  the last complete one); now the hold takes 4-10 ms;
- ``fsync`` of the WAL file after a group commit when the store must survive power loss (SYNC_FLUSH): the commits
  waiting for it are acknowledged together once it returns, as Apache's GroupCommitService does. A commit plus an
  fsync of its WAL frames is what ``synchronous=FULL`` does at every commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Protocol

_log = logging.getLogger("store.sqlite")

CHECKPOINT_INTERVAL_S = 1.0
RESTART_WAL_BYTES = 64 * 1024 * 1024
HOLD_TIMEOUT_S = 1.0  # how long to wait for the store to hold its commits before giving up this time
SHORT_CHECKPOINT_S = 0.01  # a checkpoint this quick leaves about as little for the one under the hold
CATCH_UP_ROUNDS = 10  # at most this many checkpoints before the hold (each copies what came during the last)
FORCE_RESTART_FACTOR = 4  # past this many times RESTART_WAL_BYTES, hold the commits even if the catching up failed


class CommitGate(Protocol):
    """What the store offers the background thread: holding its commits for a moment (called on the loop)."""

    def hold_commits(self, held: threading.Event) -> None:
        """Stop starting write transactions; set ``held`` once none is running."""

    def release_commits(self) -> None:
        """Start writing again (and commit what queued meanwhile)."""


class Background:
    """One thread that checkpoints the WAL and fsyncs it on request."""

    def __init__(
        self, path: pathlib.Path, loop: asyncio.AbstractEventLoop, busy_timeout_ms: int, gate: CommitGate
    ) -> None:
        self.path = path
        self.gate = gate
        self.loop = loop
        self.busy_timeout_ms = busy_timeout_ms
        self._wake = threading.Condition()
        self._stopping = False
        self._fsync_wanted: list[Callable[[BaseException | None], None]] = []
        self._checkpoint_wanted = False
        self._thread = threading.Thread(target=self._run, name=f"store-background:{path.name}", daemon=True)
        self.checkpoints = 0
        self.fsyncs = 0
        self.restarts = 0  # times the commits were held so that the WAL could start over

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish what was asked (an fsync in particular), then a last checkpoint, then stop the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    def fsync_wal(self, done: Callable[[BaseException | None], None]) -> None:
        """fsync the WAL file; ``done(error)`` is then called on the event loop. Requests that arrive while one
        fsync runs share the next one."""
        with self._wake:
            self._fsync_wanted.append(done)
            self._wake.notify()

    def checkpoint_soon(self) -> None:
        with self._wake:
            self._checkpoint_wanted = True
            self._wake.notify()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        try:
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            (page_size,) = conn.execute("PRAGMA page_size").fetchone()
            while True:
                with self._wake:
                    if not (self._stopping or self._fsync_wanted or self._checkpoint_wanted):
                        self._wake.wait(CHECKPOINT_INTERVAL_S)
                    waiting, self._fsync_wanted = self._fsync_wanted, []
                    stopping = self._stopping
                    self._checkpoint_wanted = False
                if waiting:
                    self._fsync(waiting)
                frames = self._checkpoint(conn)
                if frames * page_size >= RESTART_WAL_BYTES and not stopping:
                    self._restart_wal(conn, frames * page_size)
                if stopping and not self._fsync_wanted:
                    return
        finally:
            conn.close()

    def _fsync(self, waiting: list[Callable[[BaseException | None], None]]) -> None:
        error: BaseException | None = None
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.fsyncs += 1
        except OSError as err:
            error = err
        for done in waiting:
            self.loop.call_soon_threadsafe(done, error)

    def _checkpoint(self, conn: sqlite3.Connection) -> int:
        """Copy what the WAL holds into the database; return how many frames the WAL has (0 after a failure)."""
        try:
            _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
            return int(frames)
        except sqlite3.Error as err:  # a full disk, say: the WAL keeps the data; the next round retries
            _log.warning("checkpoint of %s failed: %s", self.path, err)
            return 0

    def _restart_wal(self, conn: sqlite3.Connection, wal_bytes: int) -> None:
        forced = wal_bytes >= FORCE_RESTART_FACTOR * RESTART_WAL_BYTES  # then no catching up first: it grows meanwhile
        if not forced and not self._caught_up(conn):
            return  # the writer outran the copying this time; try again after the next checkpoint
        held = threading.Event()
        try:
            self.loop.call_soon_threadsafe(self.gate.hold_commits, held)
        except RuntimeError:  # the loop is closed
            return
        try:
            if held.wait(HOLD_TIMEOUT_S):
                self._checkpoint(conn)
                self.restarts += 1
        finally:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.gate.release_commits)

    def _caught_up(self, conn: sqlite3.Connection) -> bool:
        """Checkpoint and sync the database file until that is quick (True), at most ``CATCH_UP_ROUNDS`` times.

        SQLite syncs the database file only in a checkpoint that reaches the end of the WAL, which under load only
        the one under the hold does: left to it, that sync would write out every page copied since the last."""
        for _ in range(CATCH_UP_ROUNDS):
            started = time.monotonic()
            self._checkpoint(conn)
            _sync_file(self.path)
            if time.monotonic() - started <= SHORT_CHECKPOINT_S:
                return True
        return False


def _sync_file(path: pathlib.Path) -> None:
    with contextlib.suppress(OSError):  # the checkpoint under the hold syncs (and reports) anyway
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

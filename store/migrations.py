"""The store's schema versions (PRAGMA user_version) and the steps between them.

``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``: an SQL script run in one transaction, or a
function for a step that moves data (it manages its own transactions and must be safe to run again after being
interrupted). Append new steps; never edit a released one, or existing databases diverge.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from importlib import resources

from store.chunks import index_entry
from store.errors import StoreError

_log = logging.getLogger("store.sqlite")

MOVE_BATCH = 20_000  # messages moved into chunks per transaction while migrating to version 5


def _to_chunks(conn: sqlite3.Connection) -> None:
    """Version 5: every message row becomes a chunk of one record, a batch of rows per transaction (so a large
    store does not need its whole size again as WAL), then the old table goes. Interrupted, it resumes where it
    stopped: rows already moved are no longer in ``messages``."""
    conn.executescript(
        """
        BEGIN IMMEDIATE;
        CREATE TABLE IF NOT EXISTS chunks (
            first_phys   INTEGER PRIMARY KEY,  -- physical offset of the first record; the records are contiguous
            topic        TEXT    NOT NULL,
            queue_id     INTEGER NOT NULL,
            first_offset INTEGER NOT NULL,     -- queue offset of the first record; the offsets are consecutive
            idx          BLOB    NOT NULL,     -- per record: end position, tags code, store timestamp (store.chunks)
            records      BLOB    NOT NULL      -- the records, back to back, offsets patched in
        );
        CREATE UNIQUE INDEX IF NOT EXISTS chunks_by_queue ON chunks (topic, queue_id, first_offset);
        COMMIT;
        """
    )
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'").fetchone() is None:
        return
    (total,) = conn.execute("SELECT COUNT(*) FROM messages").fetchone()
    if total:
        _log.info("moving %d stored messages into chunks (schema version 5); this runs once", total)
    conn.create_function("pocketmq_index_entry", 3, index_entry, deterministic=True)
    moved = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "SELECT phys_offset FROM messages ORDER BY phys_offset LIMIT 1 OFFSET ?", (MOVE_BATCH - 1,)
        ).fetchone()
        last = rows[0] if rows else None
        bound = "" if last is None else "WHERE phys_offset <= ?"
        params = () if last is None else (last,)
        conn.execute(
            "INSERT INTO chunks (first_phys, topic, queue_id, first_offset, idx, records)"
            " SELECT phys_offset, topic, queue_id, queue_offset,"
            f" pocketmq_index_entry(length(record), tags_code, store_timestamp), record FROM messages {bound}",
            params,
        )
        moved += conn.execute(f"DELETE FROM messages {bound}", params).rowcount
        conn.execute("COMMIT")
        if last is None:
            break
        _log.info("moved %d of %d messages into chunks", moved, total)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DROP TABLE messages")
    conn.execute("COMMIT")


Step = str | Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Step] = [
    resources.files("store").joinpath("schema.sql").read_text(encoding="utf-8"),
    # 2: the schedule of deferred messages (delay levels, timers, retries), by due time.
    """
    CREATE TABLE schedule (
        phys_offset INTEGER PRIMARY KEY,  -- the scheduled message, stored in messages under a schedule topic
        due_ms      INTEGER NOT NULL
    );
    CREATE INDEX schedule_by_due ON schedule (due_ms, phys_offset);
    """,
    # 3: transactional half messages and their resolution.
    """
    CREATE TABLE half_messages (
        phys_offset    INTEGER PRIMARY KEY,  -- the half message, stored under RMQ_SYS_TRANS_HALF_TOPIC
        producer_group TEXT    NOT NULL,
        transaction_id TEXT    NOT NULL,
        state          TEXT    NOT NULL,     -- pending, committed, rolled_back, discarded
        check_times    INTEGER NOT NULL,
        next_check_ms  INTEGER NOT NULL,
        created_ms     INTEGER NOT NULL,
        resolved_ms    INTEGER
    );
    CREATE INDEX half_messages_pending ON half_messages (state, next_check_ms);
    """,
    # 4: the last subscription of every (group, topic), so filters apply right after a restart
    # (Apache keeps SQL92 filter data in consumerFilter.json for the same reason).
    """
    CREATE TABLE subscriptions (
        consumer_group  TEXT    NOT NULL,
        topic           TEXT    NOT NULL,
        expression_type TEXT    NOT NULL,
        expression      TEXT    NOT NULL,
        sub_version     INTEGER NOT NULL,
        PRIMARY KEY (consumer_group, topic)
    ) WITHOUT ROWID;
    """,
    # 5: messages in chunks, one row per queue per group commit (store.chunks).
    _to_chunks,
    # 6: the key index of QUERY_MESSAGE, one row per chunk instead of one per key (store.chunks.key_digest);
    # message_keys keeps the keys of the messages stored before, and is still read.
    """
    CREATE TABLE chunk_keys (
        topic      TEXT    NOT NULL,
        first_phys INTEGER NOT NULL,  -- the chunk (chunks.first_phys)
        digests    BLOB    NOT NULL,  -- per key of the chunk's records: its 8-byte BLAKE2b digest
        slots      BLOB    NOT NULL,  -- per digest: the record's index in the chunk (uint16, little-endian)
        PRIMARY KEY (topic, first_phys)
    ) WITHOUT ROWID;
    """,
    # 7: POP consumption (gRPC receive / ack / change invisible duration) and subscription group configs.
    """
    CREATE TABLE pop_offsets (
        consumer_group TEXT    NOT NULL,
        topic          TEXT    NOT NULL,
        queue_id       INTEGER NOT NULL,
        pop_offset     INTEGER NOT NULL,  -- the next message of the queue not yet looked at by this group
        PRIMARY KEY (consumer_group, topic, queue_id)
    ) WITHOUT ROWID;
    CREATE TABLE pop_in_flight (
        consumer_group TEXT    NOT NULL,
        topic          TEXT    NOT NULL,
        queue_id       INTEGER NOT NULL,
        queue_offset   INTEGER NOT NULL,
        visible_ms     INTEGER NOT NULL,  -- invisible until then; 0: waiting for its message group's turn
        attempt        INTEGER NOT NULL,  -- deliveries so far
        generation     INTEGER NOT NULL,  -- names the current delivery in its receipt handle
        message_group  TEXT,              -- FIFO groups: the message's group, delivered one at a time
        PRIMARY KEY (consumer_group, topic, queue_id, queue_offset)
    ) WITHOUT ROWID;
    CREATE TABLE subscription_groups (
        group_name TEXT PRIMARY KEY,
        config     TEXT NOT NULL  -- SubscriptionGroupConfig as JSON
    ) WITHOUT ROWID;
    """,
    # 8: topic attributes (message.type and the others of TopicAttributes), as a JSON object.
    """
    ALTER TABLE topics ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
    """,
]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to the latest version (``len(MIGRATIONS)``) one step at a time; ``conn`` in autocommit
    mode."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    latest = len(MIGRATIONS)
    if version > latest:
        raise StoreError(
            f"the store's schema version {version} is newer than this pocketmq understands ({latest}); "
            "use the pocketmq that wrote it, or a fresh data dir"
        )
    for target, step in enumerate(MIGRATIONS[version:], start=version + 1):
        if isinstance(step, str):
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{step}\nPRAGMA user_version = {target};\nCOMMIT;")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        else:
            try:
                step(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute(f"PRAGMA user_version = {target}")
        _log.info("migrated store schema to version %d", target)

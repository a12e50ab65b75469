-- pocketmq store schema, version 1 (PRAGMA user_version = 1).
--
-- This file is the version-1 baseline only. Later versions are appended as migration steps in
-- store/sqlite.py (MIGRATIONS); never edit this file once released, or existing databases diverge.
-- The migration runner wraps it in one transaction and sets user_version.

-- One row per message, keyed by its commit-log (physical) byte offset.
CREATE TABLE messages (
    phys_offset     INTEGER PRIMARY KEY,
    topic           TEXT    NOT NULL,
    queue_id        INTEGER NOT NULL,
    queue_offset    INTEGER NOT NULL,
    tags_code       INTEGER NOT NULL,
    store_timestamp INTEGER NOT NULL,  -- ms since the epoch
    record          BLOB    NOT NULL   -- the stored record as pulls return it, both offsets patched in
);
-- Pull range scans, per-offset timestamp lookups (binary search) and the per-queue counters at open.
CREATE UNIQUE INDEX messages_by_queue ON messages (topic, queue_id, queue_offset);

-- QUERY_MESSAGE: every KEYS value and the UNIQ_KEY of a message. The primary key is the whole row, so a
-- lookup by (topic, key, time window) is one range scan of this b-tree.
CREATE TABLE message_keys (
    topic           TEXT    NOT NULL,
    msg_key         TEXT    NOT NULL,
    store_timestamp INTEGER NOT NULL,
    phys_offset     INTEGER NOT NULL,
    PRIMARY KEY (topic, msg_key, store_timestamp, phys_offset)
) WITHOUT ROWID;

CREATE TABLE consumer_offsets (
    consumer_group   TEXT    NOT NULL,
    topic            TEXT    NOT NULL,
    queue_id         INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, topic, queue_id)
) WITHOUT ROWID;

CREATE TABLE topics (
    topic_name        TEXT    PRIMARY KEY,
    read_queue_nums   INTEGER NOT NULL,
    write_queue_nums  INTEGER NOT NULL,
    perm              INTEGER NOT NULL,
    topic_filter_type TEXT    NOT NULL,
    topic_sys_flag    INTEGER NOT NULL,
    is_order          INTEGER NOT NULL
);

-- Small named values, e.g. next_phys_offset: the commit-log high-water mark, saved when deleting a
-- topic so physical offsets never go backwards even if the newest messages are gone.
CREATE TABLE store_meta (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

"""Read-only views of a store for operators, safe while the broker runs (WAL readers do not block it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from store.api import HalfMessage

_HALF_COLUMNS = (
    "phys_offset, producer_group, transaction_id, state, check_times, next_check_ms, created_ms, resolved_ms"
)


def pending_half_messages(db_path: Path) -> list[HalfMessage]:
    """Half messages still waiting for a commit or rollback, oldest first."""
    if not db_path.exists():
        raise FileNotFoundError(f"no pocketmq store at {db_path}")
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "half_messages" not in tables:
            return []
        rows = conn.execute(
            f"SELECT {_HALF_COLUMNS} FROM half_messages WHERE state = 'pending' ORDER BY created_ms"
        ).fetchall()
    finally:
        conn.close()
    return [HalfMessage(*row) for row in rows]

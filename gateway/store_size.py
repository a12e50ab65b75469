"""The size of the store's files on disk (database and WAL), for /metrics and the admin API."""

from __future__ import annotations

from pathlib import Path

STORE_FILES = ("store.db", "store.db-wal", "store.db-shm")


def store_bytes(data_dir: Path) -> int:
    total = 0
    for name in STORE_FILES:
        try:
            total += (data_dir / name).stat().st_size
        except OSError:  # not there (yet), or gone between listing and stat
            continue
    return total

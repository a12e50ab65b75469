"""Opening a store costs O(queues), not O(stored messages), and loads exactly the per-queue bounds.

The cost is measured deterministically: every SQLite virtual-machine step the store's connections run while
opening (and while answering what the broker asks at start-up) is counted with a progress handler, for the same
queues holding N and then 10 x N messages. A pass over every message (the GROUP BY this replaced) makes the
count grow tenfold; index seeks keep it flat. The stored rows are written with plain ``sqlite3`` so that building
tens of thousands of them takes a fraction of a second.
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import migrations
from store import sqlite as store_sqlite
from store.chunks import index_entry
from store.sqlite import SqliteStore

QUEUES = [(f"Topic{t}", q) for t in range(3) for q in range(4)]
# One pass over the whole queue index: what the store ran at open before the skip-scan; the reference for the bounds.
FULL_PASS = (
    "SELECT topic, queue_id, MIN(first_offset), MAX(first_offset + length(idx) / 20) - 1 FROM chunks"
    " GROUP BY topic, queue_id"
)


def _insert_messages(path: pathlib.Path, rows: Iterable[tuple[str, int, int]]) -> None:
    """Store (topic, queue_id, queue_offset) messages behind the store's back, a chunk of one 1-byte record each."""
    with sqlite3.connect(path) as conn:
        (next_phys,) = conn.execute("SELECT COALESCE(MAX(first_phys) + 1, 0) FROM chunks").fetchone()
        conn.executemany(
            store_sqlite.INSERT_CHUNK,
            (
                (next_phys + i, topic, queue_id, offset, index_entry(1, 0, 0), b"x")
                for i, (topic, queue_id, offset) in enumerate(rows)
            ),
        )
    conn.close()


def _fill(path: pathlib.Path, first: int, end: int) -> None:
    """Queue offsets [first, end) in every queue of QUEUES, plus committed half messages and a few scheduled ones."""
    _insert_messages(path, ((topic, queue_id, o) for topic, queue_id in QUEUES for o in range(first, end)))
    with sqlite3.connect(path) as conn:
        # Resolved half messages accumulate with traffic; only pending ones are read at start-up.
        conn.executemany(
            "INSERT INTO half_messages VALUES (?, 'pg', ?, 'committed', 0, 0, 0, 1)",
            ((-1 - i, f"tx{i}") for i in range(first, end)),
        )
    conn.close()


async def _count_steps_of_start_up(monkeypatch: pytest.MonkeyPatch, path: pathlib.Path) -> tuple[int, SqliteStore]:
    """VM steps of ``open()`` plus every store call the broker makes while starting (gateway/broker.py ``run``)."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # carry on

    connect = SqliteStore._connect

    def counting_connect(self: SqliteStore) -> sqlite3.Connection:
        conn = connect(self)
        conn.set_progress_handler(count, 1)
        return conn

    with monkeypatch.context() as patched:
        patched.setattr(SqliteStore, "_connect", counting_connect)
        store = SqliteStore(path)
        await store.open()
    await store.load_topics()  # TopicTable.load
    await store.delete_topic("TBW102")  # TopicTable.load without auto-create
    await store.pending_half_messages()  # TransactionChecker.load
    await store.load_subscriptions()
    await store.due_scheduled(2**62, 32)  # the delivery scheduler's first round
    await store.next_due_ms()
    return steps, store


async def test_start_up_cost_does_not_grow_with_the_stored_messages(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    await store.open()
    store.set_consumer_offset("g", "Topic0", 0, 5)
    await store.close()

    n = 1000
    costs = []
    for first, end in ((0, n), (n, 10 * n)):
        _fill(path, first, end)
        steps, store = await _count_steps_of_start_up(monkeypatch, path)
        try:
            for queue in QUEUES:
                assert (store.min_offset(*queue), store.max_offset(*queue)) == (0, end)
            assert store.get_consumer_offset("g", "Topic0", 0) == 5
        finally:
            await store.close()
        costs.append(steps)
    small, large = costs
    # A pass over every message costs over 10 steps per message: 12 queues x 9000 more messages would add >100k.
    assert large <= small + 100, costs


def test_the_bounds_query_seeks_instead_of_scanning() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrations.migrate(conn)
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + store_sqlite._LOAD_QUEUE_BOUNDS)]
    scans = [step for step in plan if step.startswith("SCAN chunks")]
    # The only scan is the LIMIT 1 that finds the first queue; every other access is a SEARCH.
    assert scans == ["SCAN chunks USING COVERING INDEX chunks_by_queue"], plan
    conn.close()


_topics = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    layout=st.dictionaries(
        st.tuples(_topics, st.integers(-3, 40)),
        st.sets(st.integers(0, 2**40), min_size=1, max_size=6),
        max_size=25,
    )
)
async def test_bounds_match_a_full_pass_for_any_layout(tmp_path_factory: pytest.TempPathFactory, layout) -> None:
    """Any topics (empty, prefixes of each other, non-ASCII), queue ids and offsets with gaps."""
    path = tmp_path_factory.mktemp("layout") / "store.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    _insert_messages(path, ((topic, queue_id, o) for (topic, queue_id), offsets in layout.items() for o in offsets))
    with sqlite3.connect(path) as conn:
        expected = {(t, q): (low, high + 1) for t, q, low, high in conn.execute(FULL_PASS)}
    conn.close()

    store = SqliteStore(path)
    await store.open()
    try:
        loaded = {queue: (store.min_offset(*queue), store.max_offset(*queue)) for queue in store._next_offset}
        assert loaded == expected
        assert expected == {queue: (min(offsets), max(offsets) + 1) for queue, offsets in layout.items()}
    finally:
        await store.close()

"""Fixtures for the store tests: a ``make_store`` factory per MessageStore implementation, and records.

``make_store`` is parametrised over the implementations, so test_contract.py runs once per implementation;
a new one only needs an entry in ``_IMPLEMENTATIONS``. Calling it again reopens the same storage, which is
how the restart tests work.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from codec.record import StoredMessage, encode_record
from store.api import AppendRequest, MessageStore
from store.sqlite import SqliteStore

StoreFactory = Callable[[], Awaitable[MessageStore]]
RequestFactory = Callable[..., AppendRequest]

# Short flush interval so background offset flushing is exercised within a test's lifetime.
_IMPLEMENTATIONS: dict[str, Callable[[pathlib.Path], MessageStore]] = {
    "sqlite": lambda directory: SqliteStore(directory / "store.db", offset_flush_interval=0.05),
}


@pytest.fixture(params=sorted(_IMPLEMENTATIONS))
async def make_store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[StoreFactory]:
    """Open a store on this test's storage; every store it made is closed at teardown."""
    opened: list[MessageStore] = []

    async def make() -> MessageStore:
        store = _IMPLEMENTATIONS[request.param](tmp_path)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> MessageStore:
    return await make_store()


def make_request(
    topic: str = "TopicA",
    queue_id: int = 0,
    body: bytes = b"hello",
    *,
    keys: Sequence[str] = (),
    store_timestamp: int = 1_700_000_000_000,
    tags_code: int = 0,
    properties: str = "",
) -> AppendRequest:
    """An append request carrying a real encoded record with zero offsets, as the broker builds it."""
    record = encode_record(
        StoredMessage(topic=topic, queue_id=queue_id, body=body, properties=properties, store_timestamp=store_timestamp)
    )
    return AppendRequest(topic, queue_id, record, tags_code, tuple(keys), store_timestamp)


@pytest.fixture
def new_request() -> RequestFactory:
    """``make_request`` as a fixture (test modules are not importable from each other under importlib mode)."""
    return make_request

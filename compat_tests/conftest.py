"""Fixtures shared by the compatibility tests: a running pocketmq per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests.harness import PocketMQ


@pytest.fixture(scope="module")
def pocketmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketMQ]:
    server = PocketMQ(data_dir=Path(tmp_path_factory.mktemp("pocketmq")) / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()

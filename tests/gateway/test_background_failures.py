"""A background job that fails (a bug, a full disk during a transaction check) restarts; the broker goes on."""

from __future__ import annotations

import anyio
import pytest

from codec.codes import RequestCode
from codec.command import request
from gateway.transaction_checker import TransactionChecker
from runtime import supervise
from store.errors import StorageUnavailable


async def test_a_failing_transaction_checker_does_not_stop_the_broker(
    cluster, namesrv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervise, "FIRST_RETRY_S", 0.01)
    runs = []
    original = TransactionChecker.run

    async def failing_run(self: TransactionChecker) -> None:
        runs.append(1)
        if len(runs) < 3:
            raise StorageUnavailable("the broker's disk is full")
        await original(self)

    monkeypatch.setattr(TransactionChecker, "run", failing_run)
    broker = await cluster.start_broker()
    client = await cluster.connect(broker)
    with anyio.fail_after(5):
        while len(runs) < 3:  # noqa: ASYNC110 - the job restarts on its own
            await anyio.sleep(0.01)
    response = await client.invoke(request(RequestCode.GET_MAX_OFFSET, {"topic": "T", "queueId": "0"}))
    assert response.code == 0

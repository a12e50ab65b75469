"""A full disk (issue 10, defect 8): sends are answered with the retriable SERVICE_NOT_AVAILABLE and a remark naming
the cause, the log gets one line rather than a traceback per send, and sends succeed again once space returns."""

from __future__ import annotations

import logging

import pytest

from codec.codes import ResponseCode


async def test_sends_on_a_full_disk_are_refused_retriably_and_recover(
    broker, bc, caplog: pytest.LogCaptureFixture
) -> None:
    await bc.send_ok("DiskFull", b"before")
    await broker.store.set_max_size(0)  # no room to grow: every write fails as on a full disk
    caplog.clear()
    with caplog.at_level(logging.INFO):
        answers = [await bc.send("DiskFull", b"x" * 100_000) for _ in range(40)]
    assert {a.code for a in answers} == {ResponseCode.SERVICE_NOT_AVAILABLE}
    assert "disk is full" in answers[0].remark
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 4  # one line per source, not 40
    await broker.store.set_max_size(None)
    after = await bc.send_ok("DiskFull", b"after")
    assert int(after.ext_fields["queueOffset"]) == 1  # no offset was used up by the refused sends
    assert [m.body for m in await bc.pull_records("DiskFull")] == [b"before", b"after"]

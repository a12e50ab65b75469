"""runtime.completion: callbacks run inside the setter, in order; errors reach callbacks and awaiters."""

from __future__ import annotations

import asyncio
import logging

import pytest

from runtime.completion import Completion


def test_callbacks_run_inside_set_result_in_the_order_added() -> None:
    done: Completion[int] = Completion()
    seen: list[tuple[str, int]] = []
    done.add_done_callback(lambda c: seen.append(("first", c.result())))
    done.add_done_callback(lambda c: seen.append(("second", c.result())))
    assert not done.done() and seen == []
    done.set_result(7)
    assert seen == [("first", 7), ("second", 7)]
    assert done.done() and not done.cancelled() and done.exception() is None


def test_a_callback_added_after_the_result_runs_at_once() -> None:
    done: Completion[str] = Completion()
    done.set_result("x")
    seen: list[str] = []
    done.add_done_callback(lambda c: seen.append(c.result()))
    assert seen == ["x"]


def test_an_exception_reaches_the_callbacks_and_result_raises_it() -> None:
    done: Completion[int] = Completion()
    errors: list[BaseException | None] = []
    done.add_done_callback(lambda c: errors.append(c.exception()))
    failure = OSError("disk full")
    done.set_exception(failure)
    assert errors == [failure]
    with pytest.raises(OSError, match="disk full"):
        done.result()


def test_results_are_set_once_and_read_only_when_set() -> None:
    done: Completion[int] = Completion()
    with pytest.raises(asyncio.InvalidStateError):
        done.result()
    with pytest.raises(asyncio.InvalidStateError):
        done.exception()
    done.set_result(1)
    with pytest.raises(asyncio.InvalidStateError):
        done.set_result(2)
    with pytest.raises(asyncio.InvalidStateError):
        done.set_exception(ValueError())
    assert done.result() == 1


def test_a_failing_callback_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    done: Completion[int] = Completion()
    seen: list[int] = []

    def broken(_c: Completion[int]) -> None:
        raise RuntimeError("bug in a callback")

    done.add_done_callback(broken)
    done.add_done_callback(lambda c: seen.append(c.result()))
    with caplog.at_level(logging.ERROR, logger="runtime.completion"):
        done.set_result(3)
    assert seen == [3]
    assert "a completion callback failed" in caplog.text and "bug in a callback" in caplog.text


async def test_it_can_be_awaited_for_its_result_or_its_exception() -> None:
    later: Completion[str] = Completion()
    asyncio.get_running_loop().call_soon(later.set_result, "stored")
    assert await later == "stored"
    failed: Completion[str] = Completion()
    asyncio.get_running_loop().call_soon(failed.set_exception, TimeoutError("late"))
    with pytest.raises(TimeoutError, match="late"):
        await failed
    already: Completion[int] = Completion()
    already.set_result(5)
    assert await already == 5

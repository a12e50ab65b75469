"""Fixtures shared by the compatibility tests (a running pocketmq per test module), and the conformance report:
the outcome of every compat test of a session goes into docs/conformance.md and compat_tests/conformance.json (see
compat_tests/conformance.py; ``POCKETMQ_CONFORMANCE_REPORT=0`` turns that off)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests import conformance
from compat_tests.harness import PocketMQ

_RECORDER = conformance.Recorder()


@pytest.fixture(scope="module")
def pocketmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketMQ]:
    server = PocketMQ(data_dir=Path(tmp_path_factory.mktemp("pocketmq")) / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------ conformance report


def _report_enabled() -> bool:
    return os.environ.get(conformance.ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def pytest_itemcollected(item: pytest.Item) -> None:
    if not _RECORDER.collected and _report_enabled():
        _RECORDER.commit_at_start = conformance.pocketmq_commit()
    _RECORDER.collect(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _RECORDER.record(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    outcomes = _RECORDER.finished()
    if not outcomes or not _report_enabled() or session.config.option.collectonly:
        return
    args = session.config.invocation_params.args
    command = os.environ.get("POCKETMQ_CONFORMANCE_COMMAND") or "python -m pytest " + shlex.join(args)
    try:
        conformance.write_report(
            _RECORDER.collected, outcomes, command=command.strip(), commit_at_start=_RECORDER.commit_at_start
        )
    except Exception as exc:  # the report must never turn a test run into an internal error
        _RECORDER.note = f"conformance report NOT written: {type(exc).__name__}: {exc}"
        return
    written = ", ".join(str(p.relative_to(conformance.REPO)) for p in (conformance.DOC_PATH, conformance.JSON_PATH))
    _RECORDER.note = f"conformance report of {len(outcomes)} compat tests written to {written}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _RECORDER.note:
        terminalreporter.write_line(_RECORDER.note)

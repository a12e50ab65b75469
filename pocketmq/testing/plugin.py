"""The pytest plugin (entry point ``pytest11``: loaded wherever pocketmq is installed).

Fixtures:

- ``pocketmq``: a pocketmq of the test's own, fresh store, stopped after the test;
- ``pocketmq_session``: one pocketmq shared by the whole session (topics and groups from earlier tests remain);

both ``pocketmq.testing.Endpoints`` (``namesrv_addr``, ``broker_addr``, ``grpc_endpoint``, ``http_endpoint``,
``data_dir``). A subprocess by default; ``--pocketmq-in-process`` (or ``pocketmq_in_process = true`` in the ini
file) runs them in a thread of the test process instead. ``@pytest.mark.pocketmq(broker_conf={...})`` gives the
function-scoped one broker.conf keys; ``@pytest.mark.pocketmq(clock="virtual")`` a virtual clock, moved by
``pocketmq.advance("2h")``.

Invariant checks: a test during which the broker found a delivery invariant broken (FIFO order of an orderly
consumer, a half or early delayed message delivered, an early dead letter, a gap: docs/testing.md) fails at
teardown with the evidence. Opt out per test with ``@pytest.mark.pocketmq(check_invariants=False)``, or for the
run with ``--pocketmq-no-invariants`` (ini ``pocketmq_check_invariants = false``).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pocketmq.testing.serve import Endpoints, serve


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pocketmq")
    group.addoption(
        "--pocketmq-in-process",
        action="store_true",
        default=None,
        help="run the pocketmq fixtures in a thread of the test process rather than a subprocess",
    )
    parser.addini("pocketmq_in_process", "run the pocketmq fixtures in-process", type="bool", default=False)
    group.addoption(
        "--pocketmq-no-invariants",
        action="store_true",
        default=None,
        help="do not fail tests during which pocketmq found a delivery invariant broken",
    )
    parser.addini(
        "pocketmq_check_invariants", "fail tests that broke a pocketmq delivery invariant", type="bool", default=True
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pocketmq(broker_conf=None, clock='system', check_invariants=True): broker.conf keys and clock of the "
        "`pocketmq` fixture; check_invariants=False lets the test pass even if pocketmq found a delivery invariant "
        "broken",
    )


def _in_process(config: pytest.Config) -> bool:
    option = config.getoption("pocketmq_in_process")
    return bool(option) if option is not None else bool(config.getini("pocketmq_in_process"))


def _checks_invariants(request: pytest.FixtureRequest) -> bool:
    marker = request.node.get_closest_marker("pocketmq")
    if marker is not None and marker.kwargs.get("check_invariants") is False:
        return False
    if request.config.getoption("pocketmq_no_invariants"):
        return False
    return bool(request.config.getini("pocketmq_check_invariants"))


def invariant_report(endpoints: Endpoints) -> dict[str, Any]:
    """``GET /api/invariants``: ``total``, ``counts`` per invariant and the ``recent`` violations."""
    if endpoints.http_endpoint is None:
        return {"total": 0, "counts": {}, "recent": []}
    with urllib.request.urlopen(f"{endpoints.http_endpoint}/api/invariants", timeout=10) as answer:
        report: dict[str, Any] = json.loads(answer.read())
    return report


def _fail_on_violations(endpoints: Endpoints, before: int) -> None:
    report = invariant_report(endpoints)
    new = report["total"] - before
    if new <= 0:
        return
    lines = [f"- {v['invariant']}: {v['message']}" for v in report["recent"][:new][::-1]]
    pytest.fail(
        f"pocketmq found {new} delivery invariant violation(s) during this test "
        "(opt out: @pytest.mark.pocketmq(check_invariants=False)):\n" + "\n".join(lines),
        pytrace=False,
    )


@pytest.fixture
def pocketmq(request: pytest.FixtureRequest) -> Iterator[Endpoints]:
    """A pocketmq (name server + broker, fresh store) for this test only."""
    marker = request.node.get_closest_marker("pocketmq")
    broker_conf = dict(marker.kwargs.get("broker_conf") or {}) if marker else {}
    clock = str(marker.kwargs.get("clock", "system")) if marker else "system"
    with serve(in_process=_in_process(request.config), broker_conf=broker_conf, clock=clock) as endpoints:
        yield endpoints
        if _checks_invariants(request):
            _fail_on_violations(endpoints, 0)


@pytest.fixture(scope="session")
def pocketmq_session(pytestconfig: pytest.Config) -> Iterator[Endpoints]:
    """One pocketmq for the whole test session."""
    with serve(in_process=_in_process(pytestconfig)) as endpoints:
        yield endpoints


@pytest.fixture(autouse=True)
def _pocketmq_session_invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test that uses ``pocketmq_session`` when violations were found while it ran."""
    if "pocketmq_session" not in request.fixturenames or not _checks_invariants(request):
        yield
        return
    endpoints: Endpoints = request.getfixturevalue("pocketmq_session")
    before = invariant_report(endpoints)["total"]
    yield
    _fail_on_violations(endpoints, before)

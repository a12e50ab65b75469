"""The pytest plugin (entry point ``pytest11``: loaded wherever pocketmq is installed).

Fixtures:

- ``pocketmq``: a pocketmq of the test's own, fresh store, stopped after the test;
- ``pocketmq_session``: one pocketmq shared by the whole session (topics and groups from earlier tests remain);

both ``pocketmq.testing.Endpoints`` (``namesrv_addr``, ``broker_addr``, ``grpc_endpoint``, ``http_endpoint``,
``data_dir``). A subprocess by default; ``--pocketmq-in-process`` (or ``pocketmq_in_process = true`` in the ini
file) runs them in a thread of the test process instead. ``@pytest.mark.pocketmq(broker_conf={...})`` gives the
function-scoped one broker.conf keys; ``@pytest.mark.pocketmq(clock="virtual")`` a virtual clock, moved by
``pocketmq.advance("2h")``.
"""

from __future__ import annotations

from collections.abc import Iterator

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pocketmq(broker_conf=None, clock='system'): broker.conf keys and clock of the `pocketmq` fixture"
    )


def _in_process(config: pytest.Config) -> bool:
    option = config.getoption("pocketmq_in_process")
    return bool(option) if option is not None else bool(config.getini("pocketmq_in_process"))


@pytest.fixture
def pocketmq(request: pytest.FixtureRequest) -> Iterator[Endpoints]:
    """A pocketmq (name server + broker, fresh store) for this test only."""
    marker = request.node.get_closest_marker("pocketmq")
    broker_conf = dict(marker.kwargs.get("broker_conf") or {}) if marker else {}
    clock = str(marker.kwargs.get("clock", "system")) if marker else "system"
    with serve(in_process=_in_process(request.config), broker_conf=broker_conf, clock=clock) as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def pocketmq_session(pytestconfig: pytest.Config) -> Iterator[Endpoints]:
    """One pocketmq for the whole test session."""
    with serve(in_process=_in_process(pytestconfig)) as endpoints:
        yield endpoints

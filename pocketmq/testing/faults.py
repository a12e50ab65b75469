"""Fault rules and the protocol trace from a test, given the ``Endpoints`` of ``serve()`` or the pytest fixtures.

    from pocketmq.testing import add_fault, faults, clear_faults

    def test_producer_retries(pocketmq):
        rule = add_fault(pocketmq, code="SEND_MESSAGE_V2", topic="T", respond="SERVICE_NOT_AVAILABLE", times=1)
        ...                                          # the application sends
        assert faults(pocketmq)[0]["injected"] == 1

Keyword names are those of the rule's JSON (docs/testing.md): ``code``, ``topic``, ``group``, ``clientId``,
``language``, ``respond`` + ``remark``, ``delayMs``, ``drop``, ``close``, ``times``, ``fraction`` + ``seed``.
A rule for gRPC (5.x) calls names ``method`` instead of ``code`` and responds with a v2 code::

    add_fault(pocketmq, method="SendMessage", topic="T", respond="TOO_MANY_REQUESTS", times=1)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pocketmq.admin_client import AdminClient, AdminError
from pocketmq.testing.serve import Endpoints

__all__ = ["AdminError", "add_fault", "clear_faults", "faults", "remove_fault", "trace_off", "trace_on"]


def _api(endpoints: Endpoints) -> AdminClient:
    if not endpoints.http_endpoint:
        raise AdminError("this pocketmq has no HTTP port (serve(http=False)): faults and the trace need it")
    return AdminClient(endpoints.http_endpoint)


def add_fault(endpoints: Endpoints, **rule: Any) -> dict[str, Any]:
    """Add a rule; the rule as the broker keeps it (with its ``id``). AdminError says what is wrong with it."""
    return _api(endpoints).post("/api/faults", rule)  # type: ignore[no-any-return]


def faults(endpoints: Endpoints) -> list[dict[str, Any]]:
    """The rules with their ``matched`` and ``injected`` counts."""
    return _api(endpoints).get("/api/faults")["rules"]  # type: ignore[no-any-return]


def remove_fault(endpoints: Endpoints, rule_id: int) -> dict[str, Any]:
    return _api(endpoints).post("/api/faults/remove", {"id": rule_id})  # type: ignore[no-any-return]


def clear_faults(endpoints: Endpoints) -> int:
    """Remove every rule; how many there were."""
    return int(_api(endpoints).post("/api/faults/clear", {})["removed"])


def trace_on(endpoints: Endpoints, file: str | Path) -> dict[str, Any]:
    """Trace every frame to ``file`` (must end in .jsonl; a relative path is under the broker's data dir)."""
    return _api(endpoints).post("/api/trace/on", {"file": str(file)})  # type: ignore[no-any-return]


def trace_off(endpoints: Endpoints) -> dict[str, Any]:
    """Stop tracing once every queued line is written; the trace's counts (``written``, ``dropped``)."""
    return _api(endpoints).post("/api/trace/off", {})  # type: ignore[no-any-return]

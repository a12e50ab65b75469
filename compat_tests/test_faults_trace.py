"""Fault injection and the protocol trace with stock clients: a Go producer (rocketmq-client-go/v2) under injected
send errors, and the trace of a C++ client's (PyPI ``rocketmq`` 0.4.4) send round trip.

pocketmq runs as ``pocketmq up --trace FILE``; rules are added with the ``pocketmq fault`` CLI over the HTTP port
and read back from ``GET /api/faults``, and the trace is read both raw and through ``pocketmq trace FILE``.
Run: ``pytest compat_tests/test_faults_trace.py -s`` (needs go for the Go test, rocketmq 0.4.4 for the C++ one).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compat_tests.go_driver import GoClient, Message
from compat_tests.harness import IN_CI, PocketMQ
from pocketmq.admin_client import AdminClient

pytestmark = [pytest.mark.compat]

CPP_DRIVER = Path(__file__).resolve().parent / "cpp" / "driver.py"
SENDS = "SEND_MESSAGE,SEND_MESSAGE_V2"  # rocketmq-client-go v2.1.2 sends with SEND_MESSAGE (10), Java with V2


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[PocketMQ, Path]]:
    """A pocketmq of this test's own, tracing every frame from its start."""
    trace = tmp_path / "trace.jsonl"
    server = PocketMQ(data_dir=tmp_path / "data", extra_args=["--trace", str(trace)])
    server.start()
    try:
        yield server, trace
    finally:
        server.stop()


def pocketmq_cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "pocketmq", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def trace_lines(trace: Path, until: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The trace's lines once ``until(lines)`` holds (the writer thread flushes within a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(x) for x in trace.read_text(encoding="utf-8").splitlines()] if trace.exists() else []
        if until(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


# --------------------------------------------------------------------------- Go: send errors and retries


def test_go_producer_under_injected_send_errors(go: GoClient, traced: tuple[PocketMQ, Path]) -> None:
    """rocketmq-client-go v2.1.2 retries a send answered SERVICE_NOT_AVAILABLE (or SYSTEM_ERROR, TOPIC_NOT_EXIST,
    NO_PERMISSION: producer.needRetryCode) and then succeeds; a SYSTEM_BUSY answer it does not retry: the send
    fails with "CODE: 2" (Java 4.x's default retryResponseCodes leave SYSTEM_BUSY out as well)."""
    server, trace = traced
    http = ["--http", f"127.0.0.1:{server.http_port}"]
    topic, group = f"go-faults-{uuid.uuid4().hex[:8]}", "go-faults-pg"
    go.produce(server.namesrv_addr, topic, group, [Message(body=b"warm-up")])  # route known, topic created

    pocketmq_cli("fault", "add", "--code", SENDS, "--topic", topic, "--respond", "SERVICE_NOT_AVAILABLE",
                 "--times", "1", *http)  # fmt: skip
    [sent] = go.produce(server.namesrv_addr, topic, group, [Message(body=b"retried")], retries=2)
    assert sent["status"] == "SEND_OK"

    pocketmq_cli("fault", "add", "--code", SENDS, "--topic", topic, "--respond", "SYSTEM_BUSY",
                 "--times", "1", *http)  # fmt: skip
    proc = go.start_produce(server.namesrv_addr, topic, group, [Message(body=b"busy")], retries=2)
    lines = proc.join(60)
    [error] = [x for x in lines if x.get("event") == "send-error"]
    assert "CODE: 2" in error["error"] and "injected SYSTEM_BUSY" in error["error"], error

    rules = AdminClient(f"http://127.0.0.1:{server.http_port}").get("/api/faults")["rules"]
    assert [(r["respond"], r["matched"], r["injected"]) for r in rules] == [
        ("SERVICE_NOT_AVAILABLE", 1, 1),
        ("SYSTEM_BUSY", 1, 1),
    ]

    def sends(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in lines if x.get("topic") == topic and x.get("server") == "broker"]

    # warm-up, the refused attempt and its retry, the busy one: four requests and four answers, all from Go
    traced_sends = trace_lines(trace, lambda ls: len(sends(ls)) >= 8)
    shown = [(x["dir"], x["name"]) for x in sends(traced_sends)]
    assert shown == [
        ("request", "SEND_MESSAGE"), ("response", "SUCCESS"),
        ("request", "SEND_MESSAGE"), ("response", "SERVICE_NOT_AVAILABLE"),
        ("request", "SEND_MESSAGE"), ("response", "SUCCESS"),
        ("request", "SEND_MESSAGE"), ("response", "SYSTEM_BUSY"),
    ], shown  # fmt: skip
    assert {x["lang"] for x in sends(traced_sends)} == {"GO"}
    print(f"\n[go] injected: {[(r['respond'], r['injected']) for r in rules]}; busy send error: {error['error']}")


# --------------------------------------------------------------------------- C++: the trace of a send


@pytest.fixture
def cpp_home(tmp_path: Path) -> Path:
    probe = subprocess.run([sys.executable, str(CPP_DRIVER), "probe"], capture_output=True, text=True, timeout=60)
    info = json.loads(probe.stdout.splitlines()[-1]) if probe.stdout.strip() else {}
    if not info.get("ok"):
        reason = f"rocketmq 0.4.4 (C++ client) unavailable: {info.get('error') or probe.stderr.strip()[-300:]}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    home = tmp_path / "cpp-home"
    home.mkdir()
    return home


def test_trace_of_a_cpp_send_round_trip(traced: tuple[PocketMQ, Path], cpp_home: Path) -> None:
    server, trace = traced
    topic = f"cpp_trace_{uuid.uuid4().hex[:8]}"
    spec = cpp_home / "spec.json"
    body = b"traced by pocketmq"
    spec.write_text(json.dumps([{"body": base64.b64encode(body).decode(), "tags": "TagA", "keys": ["k1"],
                                 "props": {}}]))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(CPP_DRIVER), "--namesrv", server.namesrv_addr, "--log-dir", str(cpp_home), "produce",
         "--topic", topic, "--group", "cpp_trace_pg", "--mode", "sync", "--spec", str(spec), "--retry-for", "20"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    produced = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    assert proc.returncode == 0 and any(x.get("event") == "sent" for x in produced), (produced, proc.stderr[-2000:])

    def round_trip(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The send requests of the topic and their answers."""
        return [
            x
            for x in lines
            if x.get("topic") == topic and str(x.get("requestName") or x.get("name")).startswith("SEND_MESSAGE")
        ]

    lines = trace_lines(
        trace, lambda ls: any(x["dir"] == "response" and x["name"] == "SUCCESS" for x in round_trip(ls))
    )
    sends = round_trip(lines)
    requests = [x for x in sends if x["dir"] == "request"]
    answers = [x for x in sends if x["dir"] == "response" and x["name"] == "SUCCESS"]
    assert requests and answers, sends
    request, answer = requests[-1], answers[-1]
    assert request["name"] in ("SEND_MESSAGE", "SEND_MESSAGE_V2") and request["lang"] == "CPP", request
    assert request["body"] == len(body) and request["topic"] == topic and request["group"] == "cpp_trace_pg"
    assert (answer["conn"], answer["opaque"]) == (request["conn"], request["opaque"]) and answer["lang"] == "CPP"
    assert answer["latencyMs"] >= 0 and "msgId" in answer["fields"]
    # the name server saw the client ask for the route (the trace covers both servers of pocketmq up)
    assert any(x["server"] == "namesrv" and x.get("topic") == topic and x["lang"] == "CPP" for x in lines)

    printed = pocketmq_cli("trace", str(trace), "--topic", topic, "--code", request["name"]).splitlines()
    assert any(f"CPP {request['ver']}" in x and f"-> {request['name']}" in x for x in printed), printed
    assert any("<- SUCCESS(0)" in x for x in printed), printed
    print("\n[cpp] " + "\n[cpp] ".join(printed))

"""The virtual clock from the outside: ``serve(clock="virtual")`` with ``Endpoints.advance``, the real
``pocketmq clock`` command against ``pocketmq up --clock virtual --ready-file``, and the pytest plugin's marker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pocketmq.admin_client import AdminError
from pocketmq.testing import Endpoints, serve

REPO = Path(__file__).resolve().parents[2]
HOUR = 3_600_000


def post(mq: Endpoints, path: str, fields: dict[str, Any]) -> Any:
    assert mq.http_endpoint is not None
    req = urllib.request.Request(mq.http_endpoint + path, data=json.dumps(fields).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as answer:
        return json.loads(answer.read())


def get(mq: Endpoints, path: str) -> Any:
    assert mq.http_endpoint is not None
    with urllib.request.urlopen(mq.http_endpoint + path, timeout=10) as answer:
        return json.loads(answer.read())


def test_serve_with_a_virtual_clock_and_endpoints_advance() -> None:
    with serve(in_process=True, clock="virtual", grpc=False) as mq:
        assert mq.clock == "virtual"
        start = get(mq, "/api/clock")["nowMs"]
        post(mq, "/api/messages/send", {"topic": "Later", "body": "in two hours", "delayLevel": 18})
        assert mq.advance("1h")["delivered"] == 0
        done = mq.advance("1h")
        assert (done["delivered"], done["nowMs"]) == (1, start + 2 * HOUR)
        [msg] = [m for q in range(4) for m in get(mq, f"/api/messages?topic=Later&queueId={q}&offset=0")["messages"]]
        assert msg["storeTimestamp"] == start + 2 * HOUR
        with pytest.raises(ValueError, match="not a duration"):
            mq.advance("soon")


def test_a_system_clock_refuses_advance() -> None:
    with serve(in_process=True, grpc=False) as mq:
        assert mq.clock == "system"
        with pytest.raises(AdminError, match=r"409.*--clock virtual"):
            mq.advance("2h")


def pocketmq_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pocketmq", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_pocketmq_clock_advance_against_pocketmq_up(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    cmd = [sys.executable, "-m", "pocketmq", "up", "--data-dir", str(tmp_path / "data"), "--namesrv-port", "0",
           "--broker-port", "0", "--grpc-port", "-1", "--http-port", "0", "--ready-file", str(ready)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "POCKETMQ_CLOCK": "virtual"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        data = json.loads(ready.read_text())
        assert data["clock"] == "virtual"
        mq = Endpoints.from_ready_file(data)
        post(mq, "/api/messages/send", {"topic": "Later", "body": "x", "delayLevel": 18})
        shown = pocketmq_cli("clock", "show", "--ready-file", str(ready))
        assert shown.returncode == 0 and shown.stdout.startswith("virtual clock at "), shown.stderr
        moved = pocketmq_cli("clock", "advance", "2h", "--ready-file", str(ready))
        assert moved.returncode == 0, moved.stderr
        assert "+7200000 ms" in moved.stdout and "1 delivered" in moved.stdout
        host_port = data["httpEndpoint"].removeprefix("http://")
        again = pocketmq_cli("clock", "advance", "500ms", "--http", host_port)
        assert again.returncode == 0 and "0 delivered" in again.stdout
        bad = pocketmq_cli("clock", "advance", "2 hours", "--http", host_port)
        assert bad.returncode != 0 and "not a duration" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        proc.terminate()
        proc.wait(15)
    unreachable = pocketmq_cli("clock", "show", "--http", "127.0.0.1:1")
    assert unreachable.returncode != 0 and "cannot reach" in unreachable.stderr
    wrong_mode = pocketmq_cli("up", "--clock", "sundial", "--data-dir", str(tmp_path / "d2"))
    assert wrong_mode.returncode != 0 and "--clock must be one of system, virtual" in wrong_mode.stderr


def test_the_pytest_plugin_marker_gives_a_virtual_clock(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_app.py").write_text(
        textwrap.dedent(
            """
            import json, urllib.request
            import pytest

            @pytest.mark.pocketmq(clock="virtual")
            def test_two_hours_in_no_time(pocketmq):
                req = urllib.request.Request(
                    pocketmq.http_endpoint + "/api/messages/send", method="POST",
                    data=json.dumps({"topic": "Later", "body": "x", "delayLevel": 18}).encode(),
                    headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=5).read()
                assert pocketmq.advance("2h")["delivered"] == 1
            """
        )
    )
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "pocketmq.testing.plugin", "-p", "no:cacheprovider",
         "--pocketmq-in-process", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout

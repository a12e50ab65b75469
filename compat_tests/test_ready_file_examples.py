"""The ``--ready-file`` examples of docs/testing.md, run as they are: a Java program (``ProcessBuilder``, run as a
single source file against the stock rocketmq-client 5.3.3) and a Go program (``os/exec``, the stock
rocketmq-client-go v2) each start ``pocketmq up`` on port 0, wait for the ready file, send a message with the stock
producer to the name server address read from it, and stop pocketmq (which must exit 0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compat_tests import go_driver

pytestmark = [pytest.mark.compat]

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def run_example(cmd: list[str], cwd: Path, tmp_path: Path) -> list[str]:
    env = {**os.environ, "POCKETMQ_COMMAND": f"{sys.executable} -m pocketmq", "TMPDIR": str(tmp_path)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout.splitlines()


def check_output(lines: list[str]) -> None:
    """The client reached pocketmq through the address from the ready file and got its send acknowledged."""
    assert lines[0].startswith("namesrvAddr=127.0.0.1:") and not lines[0].endswith(":9876"), lines
    assert "sent SEND_OK queueOffset=0" in lines, lines
    assert lines[-1] == "stopped", lines


def test_the_java_processbuilder_example(java_builds: dict[str, tuple[str, str]], tmp_path: Path) -> None:
    java, classpath = java_builds["5.3.3"]
    home = tmp_path / "home"  # the client's own log goes under user.home
    source = EXAMPLES / "java" / "ReadyFileExample.java"
    cmd = [java, f"-Duser.home={home}", f"-Djava.io.tmpdir={tmp_path}", "-cp", classpath, str(source)]
    lines = run_example(cmd, tmp_path, tmp_path)
    check_output(lines)
    assert "pocketmq exited with 0" in lines, lines
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pocketmq-")], "its store was not removed"


def test_the_go_exec_example(tmp_path: Path) -> None:
    go = go_driver.find_go()
    if go is None:
        pytest.skip("go is needed for the Go example")
    binary = tmp_path / "ready-file-example"
    env = {**os.environ, "GOFLAGS": "-mod=readonly"}  # go.sum is committed: download what go.mod needs, change nothing
    built = subprocess.run([go, "build", "-o", str(binary), "."], cwd=EXAMPLES / "go", env=env, capture_output=True,
                           text=True, timeout=900, check=False)  # fmt: skip
    assert built.returncode == 0, built.stderr
    check_output(run_example([str(binary)], tmp_path, tmp_path))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pocketmq-")], "its store was not removed"

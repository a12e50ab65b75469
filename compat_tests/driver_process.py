"""A stock-client driver process: started with a command, its stdout read as JSON lines in a thread, waited on
with deadlines, killed after a failed test. Shared by the Go, Node and Rust drivers."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _short(line: dict[str, Any]) -> str:
    """A JSON line for failure messages, with long bodies cut."""
    shown = {
        k: (v[:80] + f"...({len(v)} chars)" if isinstance(v, str) and len(v) > 120 else v) for k, v in line.items()
    }
    return json.dumps(shown, ensure_ascii=False)


class DriverProcess:
    """One driver process whose stdout JSON lines are collected by a reader thread."""

    def __init__(self, cmd: list[str], base: Path, cwd: Path | None = None) -> None:
        self.cmd = cmd
        self.stderr_path = base.with_suffix(".stderr")
        self.lines: list[dict[str, Any]] = []
        self.garbage: list[str] = []
        self._cond = threading.Condition()
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - handed to the child process
        self._stdout_copy = open(base.with_suffix(".stdout"), "w")  # noqa: SIM115 - closed by the reader
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr, text=True, cwd=cwd)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._stdout_copy.write(raw)
            self._stdout_copy.flush()
            line = raw.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                with self._cond:
                    self.garbage.append(line)
                continue
            with self._cond:
                self.lines.append(obj)
                self._cond.notify_all()
        self._stdout_copy.close()
        self.proc.stdout.close()
        with self._cond:
            self._cond.notify_all()

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            return [x for x in self.lines if x.get("event") == kind]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate(lines)`` holds; fail with the driver's output when it does not in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    if predicate(self.lines):
                        return
                    raise AssertionError(f"{what}: not seen within {timeout} s\n{self.describe()}")
                self._cond.wait(min(remaining, 0.5))

    def wait_ready(self, timeout: float = 30) -> None:
        self.wait_for(lambda ls: any(x.get("event") == "ready" for x in ls), timeout, "driver ready")

    def join(self, timeout: float) -> list[dict[str, Any]]:
        """Wait for a clean exit (status 0, a ``done`` line); return every line."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"driver did not exit within {timeout} s\n{self.describe()}") from None
        self._reader.join(timeout=10)
        self._stderr.close()
        assert rc == 0 and self.events("done"), f"driver exited with {rc}\n{self.describe()}"
        assert not self.garbage, f"driver printed non-JSON lines on stdout: {self.garbage[:5]}"
        return list(self.lines)

    def sigkill(self) -> None:
        """kill -9: the client gets no chance to end its transaction or unregister."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._reader.join(timeout=10)
        if not self._stderr.closed:
            self._stderr.close()

    def describe(self) -> str:
        with self._cond:
            out = "\n".join(_short(x) for x in self.lines[-40:])
        return f"command: {' '.join(self.cmd)}\nstdout (last lines):\n{out}\nstderr:\n{_tail(self.stderr_path)}"

    kill = sigkill

"""A stock-client driver process: started with a command, its stdout read as JSON lines in a thread, waited on
with deadlines, killed after a failed test. Shared by every client's driver wrapper."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar


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


class JsonLinesProcess:
    """A child process whose stdout JSON lines a reader thread collects (a copy of stdout next to its stderr file).

    The one reader of every stock-client driver: the Go, Node and Rust drivers (DriverProcess below) and the Java
    driver JVMs (java_driver, java_groups, java_tx)."""

    def __init__(
        self, cmd: list[str], stderr_path: Path, *, cwd: Path | None = None, stdin: bool = False, name: str = ""
    ) -> None:
        self.cmd = cmd
        self.name = name or Path(cmd[0]).name
        self.stderr_path = stderr_path
        self.lines: list[dict[str, Any]] = []
        self.garbage: list[str] = []
        self._cond = threading.Condition()
        self._stderr = open(stderr_path, "w")  # noqa: SIM115 - handed to the child process
        self._stdout_copy = open(stderr_path.with_suffix(".stdout"), "w")  # noqa: SIM115 - closed by the reader
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE if stdin else None,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read, name=f"reader-{self.name}", daemon=True)
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

    def snapshot(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.lines)

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            return [x for x in self.lines if x.get("event") == kind]

    def wait_until(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        """Whether ``predicate(lines)`` came to hold within ``timeout`` (False early if the process has ended)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return predicate(self.lines)
                self._cond.wait(min(remaining, 0.5))
            return True

    def wait_exit(self, timeout: float) -> int:
        """The exit status; kills the process and fails when it does not exit within ``timeout``."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name}: driver did not exit within {timeout} s\n{self.describe()}") from None
        self._reader.join(timeout=10)
        self._close_files()
        return rc

    def kill(self) -> None:
        """kill -9: the client gets no chance to end its transaction or unregister."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._reader.join(timeout=10)
        self._close_files()

    def _close_files(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if not self._stderr.closed:
            self._stderr.close()

    def describe(self) -> str:
        shown = " ".join(
            "<classpath>" if prev == "-cp" else arg for prev, arg in zip(["", *self.cmd[:-1]], self.cmd, strict=True)
        )
        with self._cond:
            out = "\n".join(_short(x) for x in self.lines[-40:])
        return f"command: {shown}\nstdout (last lines):\n{out}\nstderr ({self.stderr_path}):\n{_tail(self.stderr_path)}"


class DriverProcess(JsonLinesProcess):
    """A Go, Node or Rust driver process, started with a base path for its stdout copy and stderr files."""

    def __init__(self, cmd: list[str], base: Path, cwd: Path | None = None) -> None:
        super().__init__(cmd, base.with_suffix(".stderr"), cwd=cwd)

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate(lines)`` holds; fail with the driver's output when it does not in time."""
        if not self.wait_until(predicate, timeout):
            raise AssertionError(f"{what}: not seen within {timeout} s\n{self.describe()}")

    def wait_ready(self, timeout: float = 30) -> None:
        self.wait_for(lambda ls: any(x.get("event") == "ready" for x in ls), timeout, "driver ready")

    def join(self, timeout: float) -> list[dict[str, Any]]:
        """Wait for a clean exit (status 0, a ``done`` line); return every line."""
        rc = self.wait_exit(timeout)
        assert rc == 0 and self.events("done"), f"driver exited with {rc}\n{self.describe()}"
        assert not self.garbage, f"driver printed non-JSON lines on stdout: {self.garbage[:5]}"
        return list(self.lines)

    sigkill = JsonLinesProcess.kill


P = TypeVar("P", bound=JsonLinesProcess)


@dataclass
class DriverClient:
    """Base of the per-client wrappers (a dataclass with a ``work_dir`` field): numbered diagnostics paths under
    ``work_dir`` and the driver processes a test started, killed by ``close`` after a failed test."""

    if TYPE_CHECKING:
        work_dir: Path

    _seq: int = field(default=0, init=False, repr=False)
    _procs: list[JsonLinesProcess] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def close(self) -> None:
        """Kill whatever driver processes are still running."""
        for proc in self._procs:
            proc.kill()
        self._procs.clear()

    def _next(self, what: str) -> Path:
        """``work_dir/NN-what``: the base name of one process's stdout copy, stderr and input files."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir / f"{seq:02d}-{what}"

    def _track(self, proc: P) -> P:
        self._procs.append(proc)
        return proc

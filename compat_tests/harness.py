"""Start and stop a real ``pocketmq up`` process for compatibility tests, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

IN_CI = bool(os.environ.get("CI"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PocketMQ:
    """One ``pocketmq up`` subprocess. Ports stay fixed across restarts so clients can reconnect."""

    data_dir: Path
    namesrv_port: int = field(default_factory=free_port)
    broker_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)  # the gRPC endpoint for 5.x clients
    http_port: int = field(default_factory=free_port)  # /metrics
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    log_path: Path | None = None

    @property
    def namesrv_addr(self) -> str:
        return f"127.0.0.1:{self.namesrv_port}"

    @property
    def broker_addr(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def grpc_endpoints(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 20.0) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        with open(self.log_path, "a") as log:
            self._start(log, timeout)

    def _start(self, log: TextIO, timeout: float) -> None:
        cmd = [
            sys.executable, "-m", "pocketmq", "up",
            "--data-dir", str(self.data_dir),
            "--host", "127.0.0.1",
            "--namesrv-port", str(self.namesrv_port),
            "--broker-port", str(self.broker_port),
            "--grpc-port", str(self.grpc_port),
            "--http-port", str(self.http_port),
            *self.extra_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"pocketmq exited early; see {self.log_path}")
            log.write(line)
            log.flush()
            if line.startswith("namesrvAddr="):
                return
        raise RuntimeError("pocketmq did not report readiness in time")

    def stop(self, kill: bool = False) -> None:
        """Stop the server; then fail if it had died on its own or logged a traceback meanwhile (a crash that the
        clients' retries would otherwise show only as connection errors)."""
        if self.proc is None:
            return
        died = self.proc.poll()
        if died is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        log = self.log_path.read_text(errors="replace") if self.log_path else ""
        trace = log.find("Traceback (most recent call last)")
        if died is not None or trace >= 0:
            excerpt = log[max(trace, 0) :][-4000:] if trace >= 0 else log[-2000:]
            what = f"exited by itself with status {died}" if died is not None else "logged a traceback"
            raise AssertionError(f"pocketmq {what}; {self.log_path}:\n{excerpt}")

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()


def require_tool(name: str) -> str | None:
    """Path of a tool a client needs; None (so the caller skips) unless CI demands it."""
    path = shutil.which(name)
    if path is None and IN_CI:
        raise RuntimeError(f"{name} is required in CI but not installed")
    return path

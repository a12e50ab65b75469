"""Build and run the official RocketMQ 5.x Go gRPC client driver (compat_tests/go5) for test_go5.py.

The driver (``compat_tests/go5/main.go``) is built once per test session with ``go build`` into
``compat_tests/go5/bin/`` (git-ignored) against ``github.com/apache/rocketmq-clients/golang/v5`` at the version
``go.mod`` pins (modules from the Go module proxy, checked against the committed ``go.sum``; read-only module mode).
Every producer is one driver process speaking gRPC to pocketmq's MessagingService endpoint with the client's
defaults: TLS on with an ``InsecureSkipVerify`` tls.Config, so it takes the self-signed certificate pocketmq made
(``plaintext`` sets the client's package switch ``EnableSsl = false``). Its CLI mirrors the ``produce``,
``simple-consume`` and ``push-consume`` commands of compat_tests/python5/driver.py and of the Java 5.x driver: JSON
messages on stdin, one JSON object per line on stdout; its stderr goes to a per-test file, and the client's own log
(which defaults to ``$HOME/logs/rocketmq``) to ``work_dir/client-logs`` (its ``rocketmq.client.logRoot``). The
client's MessageView has neither a message type nor a store timestamp: a delivery's ``message_type`` is derived from
its message group / delivery timestamp (a TRANSACTION message shows as NORMAL), its ``store_timestamp_ms`` is None.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from compat_tests import harness
from compat_tests.go_driver import find_go
from compat_tests.python5_driver import (
    CHECK_PROPERTY,
    ConsumeResult,
    Delivery,
    DriverRun,
    Grpc5Client,
    Message,
    ProduceResult,
)

__all__ = [
    "CHECK_PROPERTY", "Build", "BuildError", "ConsumeResult", "Delivery", "Go5Client", "Message", "ProduceResult",
    "build_or_skip",
]  # fmt: skip

GO5_DIR = Path(__file__).resolve().parent / "go5"
BINARY = GO5_DIR / "bin" / "driver"
CLIENT_MODULE = "github.com/apache/rocketmq-clients/golang/v5"


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Build:
    binary: Path
    client_version: str  # the rocketmq-clients/golang/v5 version go.mod pins
    go_version: str
    seconds: float


def client_version() -> str:
    """The rocketmq-clients/golang/v5 version go.mod pins."""
    match = re.search(rf"{re.escape(CLIENT_MODULE)} (v\S+)", (GO5_DIR / "go.mod").read_text())
    assert match, f"go.mod pins no {CLIENT_MODULE}"
    return match.group(1)


_BUILT: dict[str, Build] = {}


def build(go: str, timeout: float = 900) -> Build:
    """``go build`` the driver (downloading modules on a fresh machine); once per process."""
    if go not in _BUILT:
        _BUILT[go] = _build(go, timeout)
    return _BUILT[go]


def _build(go: str, timeout: float) -> Build:
    env = dict(os.environ)
    # go.sum is committed: read-only module mode downloads what go.mod needs and never rewrites the files.
    env["GOFLAGS"] = " ".join(x for x in (env.get("GOFLAGS", ""), "-mod=readonly") if x)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [go, "build", "-o", str(BINARY), "."], cwd=GO5_DIR, env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"go build of compat_tests/go5 did not finish within {timeout} s") from exc
    seconds = time.monotonic() - started
    if proc.returncode != 0 or not BINARY.exists():
        raise BuildError(f"go build of compat_tests/go5 failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    version = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60, check=False)
    go_version = m.group(0) if (m := re.search(r"go\d+(\.\d+)+", version.stdout)) else version.stdout.strip()
    return Build(BINARY, client_version(), go_version, seconds)


def build_or_skip() -> Build:
    """:func:`build` for a module fixture: skips without go locally (harness.require_tool fails in CI) or when the
    modules cannot be fetched (offline); a failed build fails the tests in CI."""
    import pytest

    go = find_go()
    if go is None:
        pytest.skip("go is needed for the rocketmq-clients/golang/v5 driver")
    try:
        return build(go)
    except BuildError as exc:
        if harness.IN_CI:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(f"cannot build the rocketmq-clients/golang/v5 driver (offline?): {str(exc)[:500]}")


@dataclass
class Go5Client(Grpc5Client):
    """The built driver, writing its diagnostics under ``work_dir``; ``plaintext`` turns the client's TLS off."""

    build: Build
    work_dir: Path
    plaintext: bool = False
    reports_message_type = False  # MessageView has no message type: the driver derives it (TRANSACTION -> NORMAL)

    def _launch_consumer(self, what: str, args: list[str]) -> DriverRun:
        args = [*args, "--log-dir", str(self.work_dir / "client-logs"), "--plaintext" if self.plaintext else "--tls"]
        cmd = [str(self.build.binary), *args]
        return self._track(DriverRun(cmd, self._next(what).with_suffix(".stderr"), cwd=GO5_DIR))

    def start_produce(
        self,
        endpoints: str,
        topic: str,
        messages: list[Message],
        *,
        kind: str = "normal",
        end: str | None = None,
        linger: float = 0.0,
        request_timeout_ms: int | None = None,
    ) -> DriverRun:
        """One producer process sending ``messages`` (a ``kind`` producer; ``end`` = commit|rollback|none)."""
        base = self._next(f"produce-{topic}")
        args = [
            "produce", "--endpoints", endpoints, "--topic", topic, "--kind", kind, "--linger", str(linger),
            "--log-dir", str(self.work_dir / "client-logs"),
        ]  # fmt: skip
        if end is not None:
            args.append({"commit": "--commit", "rollback": "--rollback", "none": "--no-end"}[end])
        args.append("--plaintext" if self.plaintext else "--tls")
        if request_timeout_ms is not None:
            args += ["--request-timeout-ms", str(request_timeout_ms)]
        lines = "".join(json.dumps(m.to_spec(), ensure_ascii=False) + "\n" for m in messages)
        base.with_suffix(".stdin.jsonl").write_text(lines, encoding="utf-8")
        proc = DriverRun([str(self.build.binary), *args], base.with_suffix(".stderr"), cwd=GO5_DIR, stdin=True)
        assert proc.proc.stdin is not None
        proc.proc.stdin.write(lines)
        proc.proc.stdin.close()
        return self._track(proc)

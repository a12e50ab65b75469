"""Build and run the stock-Go-client scenario driver (compat_tests/go) for the Go compatibility tests.

The driver is one Go program (``compat_tests/go/main.go``) against ``github.com/apache/rocketmq-client-go/v2`` at the
version pinned in ``compat_tests/go/go.mod`` (modules come from the Go module proxy, checked against the committed
``go.sum``). It is built once per test session into ``compat_tests/go/bin/`` (git-ignored) and started as one process
per producer/consumer. It prints one JSON object per line on stdout; its stderr (the client's error log) goes to a
per-test file for diagnosis.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat_tests import harness
from compat_tests.driver_process import DriverClient, DriverProcess

GO_DIR = Path(__file__).resolve().parent / "go"
BINARY = GO_DIR / "bin" / "driver"
FALLBACK_GO = Path("/usr/local/go/bin/go")


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Build:
    binary: Path
    client_version: str  # the rocketmq-client-go/v2 version go.mod resolves to
    go_version: str
    seconds: float


def find_go() -> str | None:
    """The ``go`` tool (PATH, else the usual install location); None locally without it, an error in CI."""
    found = shutil.which("go")
    if found is None and FALLBACK_GO.exists():
        found = str(FALLBACK_GO)
    if found is None:
        return harness.require_tool("go")
    return found


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
    proc = subprocess.run(
        [go, "build", "-o", str(BINARY), "."], cwd=GO_DIR, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if proc.returncode != 0 or not BINARY.exists():
        raise BuildError(f"go build of compat_tests/go failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    listed = subprocess.run(
        [go, "list", "-m", "-f", "{{.Version}}", "github.com/apache/rocketmq-client-go/v2"], cwd=GO_DIR, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    version = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60, check=False)
    go_version = m.group(0) if (m := re.search(r"go\d+(\.\d+)+", version.stdout)) else version.stdout.strip()
    return Build(BINARY, listed.stdout.strip() or "unknown", go_version, seconds)


@dataclass
class PlannedTx:
    """One transactional message for ``txproduce``: what its local transaction and the checks answer."""

    name: str
    body: str
    local: str = "commit"  # commit | rollback | unknown
    checks: list[str] = field(default_factory=list)  # n-th check answers checks[min(n, len - 1)]; none: unknown
    tags: str | None = None
    keys: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)
    send: bool = True  # False: only answer checks for it (another process sent it)
    block_ms: int = 0

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": self.name, "body": self.body, "local": self.local, "checks": self.checks, "keys": self.keys,
            "props": self.props, "send": self.send, "blockMs": self.block_ms,
        }  # fmt: skip
        if self.tags is not None:
            spec["tags"] = self.tags
        return spec


@dataclass
class Message:
    """One message for ``produce``; ``sharding_key`` makes the producer pick the queue by its hash (orderly)."""

    body: bytes
    tags: str | None = None
    keys: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)
    delay_level: int = 0
    sharding_key: str | None = None

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "body": base64.b64encode(self.body).decode(), "tags": self.tags, "keys": self.keys, "props": self.props,
        }  # fmt: skip
        if self.delay_level:
            spec["delayLevel"] = self.delay_level
        if self.sharding_key is not None:
            spec["shardingKey"] = self.sharding_key
        return spec


SEND_MODES = ("sync", "async", "oneway", "batch")


def body_of(event: dict[str, Any]) -> bytes:
    """The raw body of a ``message`` event (printed as base64)."""
    return base64.b64decode(event["body"])


@dataclass
class GoClient(DriverClient):
    """The built driver, writing its diagnostics under ``work_dir``."""

    binary: Path
    work_dir: Path
    credentials: tuple[str, str] | None = None  # ACL 1.0 (accessKey, secretKey) for produce and consume

    def _acl_args(self) -> list[str]:
        return ["--access-key", self.credentials[0], "--secret-key", self.credentials[1]] if self.credentials else []

    def _start(self, base: Path, *args: str) -> DriverProcess:
        proc = DriverProcess([str(self.binary), *args], base)
        return self._track(proc)

    def start_txproduce(
        self,
        namesrv: str,
        topic: str,
        group: str,
        plan: list[PlannedTx],
        *,
        block_local_ms: int = 0,
        wait_checks_ms: int = 0,
        stay_ms: int = 0,
    ) -> DriverProcess:
        base = self._next(f"txproduce-{group}")
        plan_file = base.with_suffix(".plan.json")
        plan_file.write_text(json.dumps([p.to_spec() for p in plan], ensure_ascii=False), encoding="utf-8")
        return self._start(
            base, "txproduce", "--namesrv", namesrv, "--topic", topic, "--group", group, "--plan", str(plan_file),
            "--block-local-ms", str(block_local_ms), "--wait-checks-ms", str(wait_checks_ms),
            "--stay-ms", str(stay_ms),
        )  # fmt: skip

    def start_produce(
        self,
        namesrv: str,
        topic: str,
        group: str,
        messages: list[Message],
        *,
        mode: str = "sync",
        retries: int = 2,
        send_timeout_ms: int = 10_000,
    ) -> DriverProcess:
        """A producer process sending ``messages`` in order: ``ready``, then ``sent``/``send-error`` per message (by
        ``index``), then ``done``."""
        assert mode in SEND_MODES, mode
        base = self._next(f"produce-{mode}-{group}")
        spec_file = base.with_suffix(".spec.json")
        spec_file.write_text(json.dumps([m.to_spec() for m in messages], ensure_ascii=False), encoding="utf-8")
        return self._start(
            base, "produce", "--namesrv", namesrv, "--topic", topic, "--group", group, "--spec", str(spec_file),
            "--mode", mode, "--retry", str(retries), "--send-timeout-ms", str(send_timeout_ms), *self._acl_args(),
        )  # fmt: skip

    def produce(
        self, namesrv: str, topic: str, group: str, messages: list[Message], *, timeout: float = 60, **kw: Any
    ) -> list[dict[str, Any]]:
        """Send ``messages`` from one producer process; their ``sent`` events in order, all SEND_OK (or ONEWAY)."""
        proc = self.start_produce(namesrv, topic, group, messages, **kw)
        lines = proc.join(timeout)
        errors = [x for x in lines if x.get("event") == "send-error"]
        assert not errors, f"send errors: {errors}\n{proc.describe()}"
        sent = sorted((x for x in lines if x.get("event") == "sent"), key=lambda x: x["index"])
        assert [x["index"] for x in sent] == list(range(len(messages))), proc.describe()
        assert all(x["status"] in ("SEND_OK", "ONEWAY") for x in sent), sent
        return sent

    def start_consume(
        self,
        namesrv: str,
        topic: str,
        group: str,
        expect: int,
        timeout: float,
        linger: float = 2.0,
        *,
        expr: str = "*",
        sql: str | None = None,
        broadcast: bool = False,
        orderly: bool = False,
        from_where: str = "first",
        fail_until: int = 0,
        max_reconsume: int | None = None,
        retry_delay_level: int = 0,
        reply: bool = False,
        stop_file: Path | None = None,
    ) -> DriverProcess:
        """A push consumer process: ``allocated`` on each new queue assignment, ``ready``, ``message`` per delivery
        (body base64), ``done`` after ``expect`` messages (or once ``stop_file`` exists) plus ``linger`` s, or at
        ``timeout``. ``fail_until`` N answers RECONSUME_LATER while reconsumeTimes < N (-1: always)."""
        base = self._next(f"consume-{group}")
        args = [
            "consume", "--namesrv", namesrv, "--topic", topic, "--group", group, "--expect", str(expect),
            "--timeout", str(timeout), "--linger", str(linger), "--expr", expr, "--from", from_where,
            "--fail-until", str(fail_until), "--retry-delay-level", str(retry_delay_level),
        ]  # fmt: skip
        if sql is not None:
            args += ["--sql", sql]
        if broadcast:
            args.append("--broadcast")
        if orderly:
            args.append("--orderly")
        if max_reconsume is not None:
            args += ["--max-reconsume", str(max_reconsume)]
        if reply:
            args.append("--reply")
        if stop_file is not None:
            args += ["--stop-file", str(stop_file)]
        return self._start(base, *args, *self._acl_args())

    def start_request(
        self,
        namesrv: str,
        topic: str,
        group: str,
        messages: list[Message],
        *,
        ttl_ms: int = 10_000,
        use_async: bool = False,
        warmup: bool = False,
    ) -> DriverProcess:
        """Producer.Request (or RequestAsync) per message: ``reply`` (index, body base64, props, elapsedMs) or
        ``request-error``. ``warmup``: first one throwaway request (see request.go), reported as ``warmup``."""
        base = self._next(f"request-{group}")
        spec_file = base.with_suffix(".spec.json")
        spec_file.write_text(json.dumps([m.to_spec() for m in messages], ensure_ascii=False), encoding="utf-8")
        return self._start(
            base, "request", "--namesrv", namesrv, "--topic", topic, "--group", group, "--spec", str(spec_file),
            "--ttl-ms", str(ttl_ms), *(["--async"] if use_async else []),
            *(["--warmup"] if warmup else []),
        )  # fmt: skip

    def start_pull(
        self, namesrv: str, topic: str, group: str, *, expect: int, timeout: float, linger: float = 1.0, expr: str = "*"
    ) -> DriverProcess:
        """A PullConsumer polling (Poll + ACK): ``message`` per message, ``done``."""
        base = self._next(f"pull-{group}")
        return self._start(
            base, "pull", "--namesrv", namesrv, "--topic", topic, "--group", group, "--expect", str(expect),
            "--timeout", str(timeout), "--linger", str(linger), "--expr", expr,
        )  # fmt: skip

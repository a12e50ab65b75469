"""Build and run the Rust-client scenario driver (compat_tests/rust) for the Rust compatibility tests.

The driver is one Rust program (``compat_tests/rust/src/main.rs``) against the crates.io client
``rocketmq-client-rust`` at the version pinned in ``compat_tests/rust/Cargo.toml``, with every dependency locked by
the committed ``Cargo.lock``. It is built once per test session with ``cargo build --locked`` (dev profile without
debug info: a cold build is ~4-5 minutes on 2 cores, crates come from crates.io or the local cargo cache) into
``compat_tests/rust/target/`` (git-ignored; ``CARGO_TARGET_DIR`` is honoured) and started as one process per
producer/consumer. It prints one JSON object per line on stdout (see the header of main.rs); its stderr (the
client's log) goes to a per-test file for diagnosis.
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

RUST_DIR = Path(__file__).resolve().parent / "rust"
CLIENT_CRATE = "rocketmq-client-rust"
FALLBACK_CARGO = Path.home() / ".cargo" / "bin" / "cargo"


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Build:
    binary: Path
    client_version: str  # the rocketmq-client-rust version Cargo.lock pins
    rustc_version: str
    seconds: float


def find_cargo() -> str | None:
    """The ``cargo`` tool (PATH, else ~/.cargo/bin); None locally without it, an error in CI."""
    found = shutil.which("cargo")
    if found is None and FALLBACK_CARGO.exists():
        found = str(FALLBACK_CARGO)
    if found is None:
        return harness.require_tool("cargo")
    return found


def locked_version(crate: str = CLIENT_CRATE) -> str:
    """The version of ``crate`` in the committed Cargo.lock."""
    lock = (RUST_DIR / "Cargo.lock").read_text()
    m = re.search(rf'\[\[package\]\]\nname = "{re.escape(crate)}"\nversion = "([^"]+)"', lock)
    return m.group(1) if m else "unknown"


_BUILT: dict[str, Build] = {}


def build(cargo: str, timeout: float = 540) -> Build:
    """``cargo build --locked`` the driver (downloading crates on a fresh machine); once per process."""
    if cargo not in _BUILT:
        _BUILT[cargo] = _build(cargo, timeout)
    return _BUILT[cargo]


def _build(cargo: str, timeout: float) -> Build:
    env = dict(os.environ)
    target_dir = Path(env.get("CARGO_TARGET_DIR") or RUST_DIR / "target")
    env["CARGO_TARGET_DIR"] = str(target_dir)
    env.setdefault("CARGO_TERM_COLOR", "never")
    binary = target_dir / "debug" / "driver"
    started = time.monotonic()
    try:
        # --locked: Cargo.lock is committed and never rewritten; with a warm cargo cache this works offline.
        proc = subprocess.run(
            [cargo, "build", "--locked", "--bin", "driver"], cwd=RUST_DIR, env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"cargo build of compat_tests/rust took more than {timeout} s") from exc
    seconds = time.monotonic() - started
    if proc.returncode != 0 or not binary.exists():
        raise BuildError(
            f"cargo build of compat_tests/rust failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-8000:]}"
        )
    rustc_path = Path(cargo).with_name("rustc")
    rustc = subprocess.run(
        [str(rustc_path) if rustc_path.exists() else "rustc", "--version"], capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    return Build(binary, locked_version(), rustc.stdout.strip() or "unknown", seconds)


@dataclass
class Message:
    """One message for ``produce`` (also ``request`` and, as part of a ``TxMessage``, ``txproduce``).

    ``delay_level``: the message's delay level; ``deliver_after_ms``: TIMER_DELIVER_MS = the driver's send time plus
    this; ``order_key``: sent with a queue selector that maps one key to one queue."""

    topic: str
    body: bytes
    tags: str | None = None
    keys: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)
    delay_level: int | None = None
    deliver_after_ms: int | None = None
    order_key: str | None = None

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"topic": self.topic, "body": base64.b64encode(self.body).decode(), "keys": self.keys}
        if self.tags is not None:
            spec["tags"] = self.tags
        if self.props:
            spec["props"] = self.props
        if self.delay_level is not None:
            spec["delayLevel"] = self.delay_level
        if self.deliver_after_ms is not None:
            spec["deliverAfterMs"] = self.deliver_after_ms
        if self.order_key is not None:
            spec["orderKey"] = self.order_key
        return spec


@dataclass
class TxMessage:
    """One transactional message for ``txproduce``: its local transaction's answer and the answers to the broker's
    checks, in order (unknown after the last); the driver marks it with the user property ``pmqName``."""

    name: str
    message: Message
    local: str = "commit"  # commit | rollback | unknown
    checks: list[str] = field(default_factory=list)

    def to_spec(self) -> dict[str, Any]:
        return {**self.message.to_spec(), "name": self.name, "local": self.local, "checks": self.checks}


@dataclass
class RustClient(DriverClient):
    """The built driver, writing its diagnostics (stdout copy, stderr, plans) under ``work_dir``."""

    binary: Path
    work_dir: Path
    credentials: tuple[str, str] | None = None  # ACL 1.0 (accessKey, secretKey) for produce and consume

    def _start(self, base: Path, *args: str) -> DriverProcess:
        proc = DriverProcess([str(self.binary), *args], base)
        return self._track(proc)

    def _acl_args(self) -> list[str]:
        return ["--access-key", self.credentials[0], "--secret-key", self.credentials[1]] if self.credentials else []

    def _plan(self, base: Path, entries: list[Any]) -> str:
        plan = base.with_suffix(".plan.json")
        plan.write_text(json.dumps([e.to_spec() for e in entries], ensure_ascii=False), encoding="utf-8")
        return str(plan)

    def start_produce(
        self, namesrv: str, group: str, messages: list[Message], *, batch: bool = False, smart: bool = False,
        mode: str = "sync", timeout_ms: int | None = None,
    ) -> DriverProcess:  # fmt: skip
        """Send ``messages`` in order (``mode`` sync, async or oneway; or one batch); ``smart``: code 310, not 10."""
        base = self._next(f"produce-{group}")
        args = ["produce", "--namesrv", namesrv, "--group", group, "--plan", self._plan(base, messages)]
        if batch:
            args.append("--batch")
        if smart:
            args.append("--smart")
        if mode != "sync":
            args += ["--mode", mode]
        if timeout_ms is not None:
            args += ["--timeout-ms", str(timeout_ms)]
        return self._start(base, *args, *self._acl_args())

    def produce(self, *args: Any, timeout: float = 60, **kwargs: Any) -> list[dict[str, Any]]:
        """Run ``start_produce`` to its end; the ``sent`` lines."""
        proc = self.start_produce(*args, **kwargs)
        proc.join(timeout)
        return proc.events("sent")

    def start_consume(
        self, namesrv: str, topic: str, group: str, expect: int, *, expr: str = "*", timeout: float = 30,
        linger: float = 1.0, expr_type: str = "TAG", model: str = "clustering", orderly: bool = False,
        from_where: str = "first", max_reconsume: int | None = None, fail: bool = False, reply: bool = False,
        stop_file: Path | None = None,
    ) -> DriverProcess:  # fmt: skip
        """A push consumer (clustering, from the first offset) that exits after ``expect`` deliveries + ``linger``
        (or once ``stop_file`` exists); ``expr_type`` TAG or SQL92. ``fail``: RECONSUME_LATER while a message's
        reconsume times are below its ``pmqFailTimes`` property; ``reply``: answer request messages (body
        ``reply:`` + request body)."""
        base = self._next(f"consume-{group}")
        args = [
            "consume", "--namesrv", namesrv, "--topic", topic, "--group", group, "--expr", expr,
            "--expect", str(expect), "--timeout", str(timeout), "--linger", str(linger),
        ]  # fmt: skip
        if expr_type != "TAG":
            args += ["--expr-type", expr_type]
        if model != "clustering":
            args += ["--model", model]
        if from_where != "first":
            args += ["--from", from_where]
        if max_reconsume is not None:
            args += ["--max-reconsume", str(max_reconsume)]
        if stop_file is not None:
            args += ["--stop-file", str(stop_file)]
        args += [f"--{flag}" for flag, on in (("orderly", orderly), ("fail", fail), ("reply", reply)) if on]
        return self._start(base, *args, *self._acl_args())

    def start_txproduce(
        self, namesrv: str, group: str, messages: list[TxMessage], *, wait_checks_ms: int = 30_000, stay_ms: int = 0
    ) -> DriverProcess:
        """A transaction producer: ``local``, ``sent`` and ``check`` lines; it waits for the planned checks and stays
        at least ``stay_ms`` after its sends (answering any check)."""
        base = self._next(f"txproduce-{group}")
        return self._start(
            base, "txproduce", "--namesrv", namesrv, "--group", group, "--plan", self._plan(base, messages),
            "--wait-checks-ms", str(wait_checks_ms), "--stay-ms", str(stay_ms),
        )  # fmt: skip

    def start_request(
        self, namesrv: str, group: str, messages: list[Message], *, timeout_ms: int = 10_000
    ) -> DriverProcess:
        """``request()`` each message in turn (request-reply); a ``reply`` line per answer."""
        base = self._next(f"request-{group}")
        args = ["request", "--namesrv", namesrv, "--group", group, "--plan", self._plan(base, messages)]
        return self._start(base, *args, "--timeout-ms", str(timeout_ms))

    def start_pull(
        self, namesrv: str, topic: str, group: str, expect: int, *, timeout: float = 30, linger: float = 1.0
    ) -> DriverProcess:
        """A lite pull consumer (subscribe, poll, commit_sync) that exits after ``expect`` messages + ``linger``."""
        base = self._next(f"pull-{group}")
        return self._start(
            base, "pull", "--namesrv", namesrv, "--topic", topic, "--group", group, "--expect", str(expect),
            "--timeout", str(timeout), "--linger", str(linger),
        )  # fmt: skip

    def query(
        self, namesrv: str, group: str, topic: str, *, key: str | None = None, offset_msg_id: str | None = None,
        timeout: float = 60,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Query by key and/or view by offset message id; the ``found`` lines."""
        base = self._next(f"query-{group}")
        args = ["query", "--namesrv", namesrv, "--group", group, "--topic", topic]
        if key is not None:
            args += ["--key", key]
        if offset_msg_id is not None:
            args += ["--offset-msg-id", offset_msg_id]
        proc = self._start(base, *args)
        proc.join(timeout)
        return proc.events("found")

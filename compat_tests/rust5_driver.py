"""Build and run the official RocketMQ 5.x Rust gRPC client driver (compat_tests/rust5) for test_rust5.py.

The driver (``compat_tests/rust5/src/main.rs``) is built once per test session with ``cargo build --locked`` into
``compat_tests/rust5/target/`` (git-ignored; ``CARGO_TARGET_DIR`` is honoured) against crates.io ``rocketmq`` at the
version ``Cargo.toml`` pins, every dependency locked by the committed ``Cargo.lock`` (dev profile without debug
info, as compat_tests/rust: a build with an empty target/ takes ~2 minutes on 2 cores, 112 s with the crates
``~/.cargo`` already holds, 123 s downloading them all).
Every producer or consumer is one driver process speaking gRPC to pocketmq's MessagingService endpoint. Its CLI
mirrors the ``produce``, ``simple-consume`` and ``push-consume`` commands of the Go 5.x driver: JSON messages on
stdin, one JSON object per line on stdout; its stderr (the client's terminal log) goes to a per-test file.

What the crate (5.0.0) has, and what it lacks:

- Producer (normal, FIFO, delay, transaction with a checker) and SimpleConsumer (receive, ack) only: no
  PushConsumer (``push-consume`` prints one startup error line), no recall (a ``recall`` message is refused).
- The client's default is plaintext (``ClientOption`` ``enable_tls`` is false); with ``tls`` the client verifies
  the server against the system's roots (rustls-native-certs), which ``SSL_CERT_FILE`` replaces: ``ca_file`` (the
  driver's ``--ca-file``) sets it to the PEM to trust (pocketmq's self-signed ``<data_dir>/grpc-tls-cert.pem``).
- Its SendReceipt has a message id and a transaction id only: a send line's ``offset`` is None.
- Times are whole seconds: a delivery timestamp is sent without nanos (the driver rounds the requested instant up to
  the second and reports that instant), and a received message's born and delivery timestamps come back in seconds.
- Its MessageView has neither a message type nor a store timestamp: a delivery's ``message_type`` is derived from
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
from compat_tests.python5_driver import (
    CHECK_PROPERTY,
    ConsumeResult,
    Delivery,
    DriverRun,
    Grpc5Client,
    Message,
    ProduceResult,
)
from compat_tests.rust_driver import find_cargo

__all__ = [
    "CHECK_PROPERTY", "Build", "BuildError", "ConsumeResult", "Delivery", "Message", "ProduceResult", "Rust5Client",
    "build_or_skip",
]  # fmt: skip

RUST5_DIR = Path(__file__).resolve().parent / "rust5"
CLIENT_CRATE = "rocketmq"


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Build:
    binary: Path
    client_version: str  # the rocketmq version Cargo.lock pins
    rustc_version: str
    seconds: float


def client_version() -> str:
    """The version of the ``rocketmq`` crate in the committed Cargo.lock."""
    lock = (RUST5_DIR / "Cargo.lock").read_text()
    m = re.search(rf'\[\[package\]\]\nname = "{re.escape(CLIENT_CRATE)}"\nversion = "([^"]+)"', lock)
    assert m, f"Cargo.lock pins no {CLIENT_CRATE}"
    return m.group(1)


_BUILT: dict[str, Build] = {}


def build(cargo: str, timeout: float = 540) -> Build:
    """``cargo build --locked`` the driver (downloading crates on a fresh machine); once per process."""
    if cargo not in _BUILT:
        _BUILT[cargo] = _build(cargo, timeout)
    return _BUILT[cargo]


def _build(cargo: str, timeout: float) -> Build:
    env = dict(os.environ)
    target_dir = Path(env.get("CARGO_TARGET_DIR") or RUST5_DIR / "target")
    env["CARGO_TARGET_DIR"] = str(target_dir)
    env.setdefault("CARGO_TERM_COLOR", "never")
    binary = target_dir / "debug" / "driver"
    started = time.monotonic()
    try:
        # --locked: Cargo.lock is committed and never rewritten; with a warm cargo cache this works offline.
        proc = subprocess.run(
            [cargo, "build", "--locked", "--bin", "driver"], cwd=RUST5_DIR, env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"cargo build of compat_tests/rust5 took more than {timeout} s") from exc
    seconds = time.monotonic() - started
    if proc.returncode != 0 or not binary.exists():
        raise BuildError(
            f"cargo build of compat_tests/rust5 failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-8000:]}"
        )
    rustc_path = Path(cargo).with_name("rustc")
    rustc = subprocess.run(
        [str(rustc_path) if rustc_path.exists() else "rustc", "--version"], capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    return Build(binary, client_version(), rustc.stdout.strip() or "unknown", seconds)


def build_or_skip() -> Build:
    """:func:`build` for a module fixture: skips without cargo locally (harness.require_tool fails in CI) or when the
    crates cannot be fetched (offline); a failed build fails the tests in CI."""
    import pytest

    cargo = find_cargo()
    if cargo is None:
        pytest.skip("cargo is needed for the rocketmq (Rust 5.x) driver")
    try:
        return build(cargo)
    except BuildError as exc:
        if harness.IN_CI:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(f"cannot build the rocketmq (Rust 5.x) driver (offline?): {str(exc)[:500]}")


@dataclass
class Rust5Client(Grpc5Client):
    """The built driver, writing its diagnostics under ``work_dir``. ``tls`` turns the client's TLS on (its default
    is plaintext); ``ca_file`` is the PEM it then trusts (``--ca-file``: SSL_CERT_FILE), not the system's roots."""

    build: Build
    work_dir: Path
    tls: bool = False
    ca_file: Path | None = None
    reports_message_type = False  # MessageView has no message type: the driver derives it (TRANSACTION -> NORMAL)

    def _run(self, base: Path, args: list[str], stdin: bool = False) -> DriverRun:
        args = [*args, "--tls" if self.tls else "--plaintext"]
        if self.ca_file is not None:
            args += ["--ca-file", str(self.ca_file)]
        cmd = [str(self.build.binary), *args]
        return self._track(DriverRun(cmd, base.with_suffix(".stderr"), cwd=RUST5_DIR, stdin=stdin))

    def _launch_consumer(self, what: str, args: list[str]) -> DriverRun:
        return self._run(self._next(what), args)

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
        args = ["produce", "--endpoints", endpoints, "--topic", topic, "--kind", kind, "--linger", str(linger)]
        if end is not None:
            args.append({"commit": "--commit", "rollback": "--rollback", "none": "--no-end"}[end])
        if request_timeout_ms is not None:
            args += ["--request-timeout-ms", str(request_timeout_ms)]
        lines = "".join(json.dumps(m.to_spec(), ensure_ascii=False) + "\n" for m in messages)
        base.with_suffix(".stdin.jsonl").write_text(lines, encoding="utf-8")
        proc = self._run(base, args, stdin=True)
        assert proc.proc.stdin is not None
        proc.proc.stdin.write(lines)
        proc.proc.stdin.close()
        return proc

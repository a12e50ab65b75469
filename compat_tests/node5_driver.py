"""Install and run the official RocketMQ 5.x Node.js gRPC client driver (compat_tests/node5) for test_node5.py.

The driver is one Node program (``compat_tests/node5/driver.js``) against npm ``rocketmq-client-nodejs`` at the exact
version pinned in ``compat_tests/node5/package.json`` (resolved through the committed ``package-lock.json``). Its
dependencies (gRPC-js, google-protobuf, ...) are installed once per test session with ``npm ci`` into
``compat_tests/node5/node_modules`` (git-ignored; nothing when node_modules already matches the lock), as
compat_tests/node_driver.py does for ali-ons. Every producer is one ``node`` process speaking gRPC to pocketmq's
MessagingService endpoint with the client's defaults: ``sslEnabled`` false, i.e. plaintext (the Java client defaults
to TLS). ``tls`` sets ``sslEnabled: true``; the client then verifies the server certificate against gRPC's default
roots (no option of the client changes them), so with ``ca_file`` the driver points grpc-js'
``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` at that PEM (pocketmq's self-signed ``<data_dir>/grpc-tls-cert.pem``). Its CLI
mirrors the ``produce``, ``simple-consume`` and ``push-consume`` commands of compat_tests/python5/driver.py: JSON
messages on stdin, one JSON object per line on stdout; its stderr (the client's log, which the driver hands a stderr
logger instead of the default ``~/logs/rocketmq`` file) goes to a per-test file. The client's MessageView has neither
a message type nor a store timestamp: a delivery's ``message_type`` is derived from its message group / delivery
timestamp (a TRANSACTION message shows as NORMAL), its ``store_timestamp_ms`` is None; its PushConsumer has no
consumption thread count.
"""

from __future__ import annotations

import json
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

__all__ = [
    "CHECK_PROPERTY", "ConsumeResult", "Delivery", "Install", "InstallError", "Message", "Node5Client",
    "ProduceResult", "install_or_skip",
]  # fmt: skip

NODE5_DIR = Path(__file__).resolve().parent / "node5"
DRIVER = NODE5_DIR / "driver.js"
CLIENT_PACKAGE = "rocketmq-client-nodejs"


class InstallError(RuntimeError):
    pass


@dataclass(frozen=True)
class Install:
    node: str
    client_version: str  # the rocketmq-client-nodejs version installed in node_modules
    node_version: str
    command: str  # "npm ci", or none when node_modules already matches the lock
    seconds: float


_INSTALLED: dict[str, Install] = {}


def install(node: str, npm: str, timeout: float = 600) -> Install:
    """``npm ci`` in compat_tests/node5; once per process."""
    if npm not in _INSTALLED:
        _INSTALLED[npm] = _install(node, npm, timeout)
    return _INSTALLED[npm]


def _manifest() -> Path:
    return NODE5_DIR / "node_modules" / CLIENT_PACKAGE / "package.json"


def _up_to_date() -> bool:
    """node_modules holds exactly what package-lock.json pins, optional packages of other platforms aside (npm's
    hidden lockfile says so)."""
    try:
        locked = json.loads((NODE5_DIR / "package-lock.json").read_text())["packages"]
        installed = json.loads((NODE5_DIR / "node_modules" / ".package-lock.json").read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return False
    # The lock lists every platform's optional native build (@node-rs/crc32-*); npm installs only this one's.
    wanted = {k: v for k, v in locked.items() if k and (k in installed or not v.get("optional"))}
    return _manifest().exists() and wanted == installed


def _install(node: str, npm: str, timeout: float) -> Install:
    if _up_to_date():
        # npm ci would delete and rebuild node_modules under the feet of another session's node processes.
        return _installed(node, "none (node_modules matches package-lock.json)", 0.0)
    args = ["ci", "--no-audit", "--no-fund", "--ignore-scripts"]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [npm, *args], cwd=NODE5_DIR, capture_output=True, text=True, timeout=timeout, check=False
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"npm ci in compat_tests/node5 did not finish within {timeout} s") from exc
    seconds = time.monotonic() - started
    if proc.returncode != 0 or not _manifest().exists():
        raise InstallError(
            f"npm ci in compat_tests/node5 failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return _installed(node, "npm ci", seconds)


def _installed(node: str, command: str, seconds: float) -> Install:
    client_version = json.loads(_manifest().read_text())["version"]
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=60, check=False)
    return Install(node, client_version, version.stdout.strip(), command, seconds)


def install_or_skip() -> Install:
    """:func:`install` for a module fixture: skips without node/npm locally (harness.require_tool fails in CI) or
    when npm cannot fetch (offline); a failed install fails the tests in CI."""
    import pytest

    node, npm = harness.require_tool("node"), harness.require_tool("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the rocketmq-client-nodejs driver")
    try:
        return install(node, npm)
    except InstallError as exc:
        if harness.IN_CI:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(f"cannot install rocketmq-client-nodejs (offline?): {str(exc)[:500]}")


@dataclass
class Node5Client(Grpc5Client):
    """The installed driver, writing its diagnostics under ``work_dir``. ``tls`` turns the client's TLS on
    (``sslEnabled: true``); ``ca_file`` is then the certificate grpc-js trusts (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH)."""

    install: Install
    work_dir: Path
    tls: bool = False
    ca_file: Path | None = None
    reports_message_type = False  # MessageView has no message type: the driver derives it (TRANSACTION -> NORMAL)

    def _connection_args(self) -> list[str]:
        """--tls / --ca-file as configured, and the driver's HOME fence."""
        args = ["--tls"] if self.tls else []
        home = self.work_dir / "driver-home"  # a fence: the client's default logger would write ~/logs/rocketmq/
        home.mkdir(parents=True, exist_ok=True)
        args += ["--client-home", str(home)]
        if self.ca_file is not None:
            args += ["--ca-file", str(self.ca_file)]
        return args

    def _launch_consumer(self, what: str, args: list[str]) -> DriverRun:
        cmd = [self.install.node, str(DRIVER), *args, *self._connection_args()]
        return self._track(DriverRun(cmd, self._next(what).with_suffix(".stderr"), cwd=NODE5_DIR))

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
        cmd = [self.install.node, str(DRIVER), *args, *self._connection_args()]
        lines = "".join(json.dumps(m.to_spec(), ensure_ascii=False) + "\n" for m in messages)
        base.with_suffix(".stdin.jsonl").write_text(lines, encoding="utf-8")
        proc = DriverRun(cmd, base.with_suffix(".stderr"), cwd=NODE5_DIR, stdin=True)
        assert proc.proc.stdin is not None
        proc.proc.stdin.write(lines)
        proc.proc.stdin.close()
        return self._track(proc)

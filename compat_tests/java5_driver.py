"""Build and run the official RocketMQ 5.x Java gRPC client driver (compat_tests/java5) for test_java5.py.

The driver (``pocketmq.compat5.Driver``) is compiled once per test session with Maven into
``compat_tests/java5/target/`` (git-ignored) against Maven Central ``org.apache.rocketmq:rocketmq-client-java`` at the
version the pom pins (a shaded jar: gRPC, Netty and protobuf inside). Every producer is one JVM speaking gRPC to
pocketmq's MessagingService endpoint with the client's defaults: TLS on, trusting any certificate (``plaintext``
sets ``enableSsl(false)``). Its CLI mirrors the ``produce``, ``simple-consume`` and ``push-consume`` commands of
compat_tests/python5/driver.py: JSON messages on stdin, one JSON object per line on stdout; its stderr goes to a
per-test file. The client's MessageView has neither a message type nor a store timestamp: a delivery's
``message_type`` is derived from its message group / delivery timestamp (a TRANSACTION message shows as NORMAL), its
``store_timestamp_ms`` is None.
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
from compat_tests.java_driver import JVM_FLAGS
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
    "CHECK_PROPERTY", "Build", "BuildError", "ConsumeResult", "Delivery", "Java5Client", "Message", "ProduceResult",
    "build_or_skip",
]  # fmt: skip

JAVA5_DIR = Path(__file__).resolve().parent / "java5"
TARGET = JAVA5_DIR / "target"
MAIN_CLASS = "pocketmq.compat5.Driver"


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Build:
    java: str
    classpath: str
    client_version: str
    seconds: float


def client_version() -> str:
    """The rocketmq-client-java version the pom pins."""
    pom = (JAVA5_DIR / "pom.xml").read_text()
    match = re.search(r"<rocketmq\.client\.java\.version>([^<]+)<", pom)
    assert match, "pom.xml pins no rocketmq.client.java.version"
    return match.group(1)


_BUILT: dict[str, Build] = {}


def build(java: str, mvn: str, timeout: float = 900) -> Build:
    """``mvn process-classes`` once per process; the driver's runtime classpath."""
    if mvn not in _BUILT:
        _BUILT[mvn] = _build(java, mvn, timeout)
    return _BUILT[mvn]


def _build(java: str, mvn: str, timeout: float) -> Build:
    cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(JAVA5_DIR / "pom.xml"), "process-classes"]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=JAVA5_DIR, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"maven build of compat_tests/java5 did not finish within {timeout} s") from exc
    classpath_file = TARGET / "classpath.txt"
    if proc.returncode != 0 or not classpath_file.exists():
        output = re.sub(r"\x1b\[[0-9;]*m", "", f"{proc.stdout}\n{proc.stderr}")
        raise BuildError(f"maven build of compat_tests/java5 failed (exit {proc.returncode}):\n{output[-6000:]}")
    classpath = os.pathsep.join([str(TARGET / "classes"), classpath_file.read_text().strip()])
    return Build(java, classpath, client_version(), time.monotonic() - started)


def build_or_skip() -> Build:
    """:func:`build` for a module fixture: skips without java/mvn locally (harness.require_tool fails in CI) or when
    Maven cannot resolve (offline); a failed build fails the tests in CI."""
    import pytest

    java, mvn = harness.require_tool("java"), harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed for the rocketmq-client-java driver")
    try:
        return build(java, mvn)
    except BuildError as exc:
        if harness.IN_CI:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(f"cannot build the rocketmq-client-java driver (offline?): {str(exc)[:500]}")


@dataclass
class Java5Client(Grpc5Client):
    """The built driver, writing its diagnostics under ``work_dir``; ``plaintext`` turns the client's TLS off."""

    build: Build
    work_dir: Path
    plaintext: bool = False
    reports_message_type = False  # MessageView has no message type: the driver derives it (TRANSACTION -> NORMAL)

    def _launch_consumer(self, what: str, args: list[str]) -> DriverRun:
        args = [*args, "--log-dir", str(self.work_dir / "client-logs"), *(["--plaintext"] if self.plaintext else [])]
        cmd = [self.build.java, *JVM_FLAGS, "-cp", self.build.classpath, MAIN_CLASS, *args]
        return self._track(DriverRun(cmd, self._next(what).with_suffix(".stderr"), cwd=JAVA5_DIR))

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
        """One producer JVM sending ``messages`` (a ``kind`` producer; ``end`` = commit|rollback|none)."""
        base = self._next(f"produce-{topic}")
        args = [
            "produce", "--endpoints", endpoints, "--topic", topic, "--kind", kind, "--linger", str(linger),
            "--log-dir", str(self.work_dir / "client-logs"),
        ]  # fmt: skip
        if end is not None:
            args.append({"commit": "--commit", "rollback": "--rollback", "none": "--no-end"}[end])
        if self.plaintext:
            args.append("--plaintext")
        if request_timeout_ms is not None:
            args += ["--request-timeout-ms", str(request_timeout_ms)]
        cmd = [self.build.java, *JVM_FLAGS, "-cp", self.build.classpath, MAIN_CLASS, *args]
        lines = "".join(json.dumps(m.to_spec(), ensure_ascii=False) + "\n" for m in messages)
        base.with_suffix(".stdin.jsonl").write_text(lines, encoding="utf-8")
        proc = DriverRun(cmd, base.with_suffix(".stderr"), cwd=JAVA5_DIR, stdin=True)
        assert proc.proc.stdin is not None
        proc.proc.stdin.write(lines)
        proc.proc.stdin.close()
        return self._track(proc)

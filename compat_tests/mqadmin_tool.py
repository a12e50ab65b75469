"""Run the stock Apache RocketMQ admin tool (``mqadmin``: ``MQAdminStartup`` from Maven Central's rocketmq-tools)
against a name server, at either tool version the compat tests use (5.3.3 and 4.9.8).

:func:`build` resolves rocketmq-tools with Maven once per version (compat_tests/mqadmin/pom.xml), compiles the
runner against it and returns the runtime classpath; :class:`MQAdmin` runs one subcommand and returns its exit code
and output (the tool prints errors such as ``CODE: 3 ... request type N not supported`` on stdout or stderr and
often exits 0).

A JVM per subcommand costs seconds of start-up, so by default the subcommands of one tool (classpath and home) run
one after the other in a shared JVM, ``MQAdminRunner`` (compat_tests/mqadmin/src): the same entry point, its own
stdout and stderr per command, System.exit trapped and reported as the exit code, the System properties put back
after each command. A command that leaves a client registered or too many threads behind gets a fresh runner for
the next one; one that runs past its timeout has its runner killed (``subprocess.TimeoutExpired``, as before).
``MQAdmin(..., per_jvm=True)`` or ``POCKETMQ_MQADMIN_PER_JVM=1`` runs every command in a JVM of its own.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import locale
import os
import re
import selectors
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MQADMIN_DIR = Path(__file__).resolve().parent / "mqadmin"
MAIN_CLASS = "org.apache.rocketmq.tools.command.MQAdminStartup"
RUNNER_CLASS = "pocketmq.compat.mqadmin.MQAdminRunner"
PER_JVM_ENV = "POCKETMQ_MQADMIN_PER_JVM"
# Java 17 lets the runner install the SecurityManager that traps System.exit only when asked for (it warns once).
RUNNER_FLAGS = ["-Djava.security.manager=allow"]
RUNNER_START_TIMEOUT = 60.0
# A runner with more live threads than this after a command is replaced. Each command leaves ~5 client threads
# behind that end a few seconds later (Netty's graceful shutdown): a burst of quick commands reaches ~150.
RUNNER_THREAD_LIMIT = 500
TOOL_VERSIONS = ("5.3.3", "4.9.8")
JVM_FLAGS = ["-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]

_BUILT: dict[tuple[str, str], str] = {}
# The tool's own log (client internals) is of no interest here: warnings only, to its home directory.
_QUIET_LOGBACK = """<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>${user.home}/tools.log</file>
    <encoder><pattern>%d %p %c{1} - %m%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="FILE"/></root>
</configuration>
"""


class BuildError(RuntimeError):
    pass


def build(mvn: str, version: str, timeout: float = 900) -> str:
    """The runtime classpath of rocketmq-tools ``version`` with the runner's classes first (built once per
    session)."""
    if (mvn, version) not in _BUILT:
        target = MQADMIN_DIR / f"target-{version}"
        cmd = [
            mvn, "-B", "-q", "-Dstyle.color=never", f"-Drocketmq.tools.version={version}",
            "-f", str(MQADMIN_DIR / "pom.xml"), "process-classes",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=MQADMIN_DIR, check=False)
        classpath_file = target / "classpath.txt"
        if proc.returncode != 0 or not classpath_file.exists():
            output = re.sub(r"\x1b\[[0-9;]*m", "", f"{proc.stdout}\n{proc.stderr}")
            raise BuildError(
                f"maven could not resolve rocketmq-tools {version} or compile the runner (exit {proc.returncode}):\n"
                f"{output}"
            )
        _BUILT[mvn, version] = os.pathsep.join([str(target / "classes"), classpath_file.read_text().strip()])
    return _BUILT[mvn, version]


@dataclass(frozen=True)
class Output:
    returncode: int
    text: str  # stdout and stderr together, in that order

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]


@dataclass(frozen=True)
class MQAdmin:
    java: str
    classpath: str
    namesrv: str
    home: Path  # the tool's user.home and ROCKETMQ_HOME (its log files land there)
    per_jvm: bool = False  # True: a JVM per command, as ``bin/mqadmin`` does

    def __call__(self, command: str, *args: str, timeout: float = 60) -> Output:
        """``mqadmin <command> -n <namesrv> <args>``."""
        _prepare_home(self.home)
        argv = [command, "-n", self.namesrv, *args]
        env = {**os.environ, "ROCKETMQ_HOME": str(self.home)}
        per_jvm = self.per_jvm or os.environ.get(PER_JVM_ENV, "").strip().lower() in ("1", "true", "yes")
        if not per_jvm and (self.java, self.classpath) not in _UNAVAILABLE:
            with contextlib.suppress(_RunnerUnavailable):  # this JVM cannot trap System.exit: a JVM per command
                return _run_shared((self.java, self.classpath, str(self.home)), env, argv, timeout)
        return _run_in_own_jvm(self.java, self.classpath, self.home, env, argv, timeout)

    def close(self) -> None:
        """Stop the shared runner of this tool, if one runs (the next call starts another)."""
        _stop_runner((self.java, self.classpath, str(self.home)))


def _prepare_home(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    logback = home / "conf" / "logback_tools.xml"  # the 4.9 tool reads ROCKETMQ_HOME/conf/ at start
    if not logback.exists():
        logback.parent.mkdir(parents=True, exist_ok=True)
        logback.write_text(_QUIET_LOGBACK, encoding="utf-8")


def _run_in_own_jvm(
    java: str, classpath: str, home: Path, env: dict[str, str], argv: list[str], timeout: float
) -> Output:
    cmd = [java, *JVM_FLAGS, f"-Duser.home={home}", "-cp", classpath, MAIN_CLASS, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    return Output(proc.returncode, proc.stdout + proc.stderr)


def _decode(data: bytes) -> str:
    """What ``subprocess.run(..., text=True)`` makes of a JVM's output: locale encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


_RUNNER_FRAME = "\tat pocketmq.compat.mqadmin.MQAdminRunner"
_THREAD_RUN_FRAME = "\tat java.base/java.lang.Thread.run("
_TRACE_LINE = re.compile(r"^(\t+at |\t+\.\.\. \d+ more$|\t*Caused by: |\t+Suppressed: )")
_MORE = re.compile(r"^\t\.\.\. (\d+) more$")


def _without_runner_frames(text: str) -> str:
    """Stack traces printed on the runner's command thread as a JVM of their own prints them. Below
    ``MQAdminStartup.main`` the runner's thread has two frames more (its lambda, ``Thread.run``); a cause sharing
    them says ``... N more`` with N two higher, or ``... 1 more`` for a cause from another thread (the shared
    ``Thread.run``, which a JVM of its own lists). Suppressed exceptions are left as printed."""
    if _RUNNER_FRAME not in text:
        return text
    lines, out, start = text.split("\n"), [], 0
    while start < len(lines):
        end = start + 1
        while end < len(lines) and _TRACE_LINE.match(lines[end]):
            end += 1
        out += _trace_without_runner_frames(lines[start:end])
        start = end
    return "\n".join(out)


def _trace_without_runner_frames(trace: list[str]) -> list[str]:
    """One exception line and its trace (or any other line, returned as it is)."""
    at = next((i for i, line in enumerate(trace[:-1]) if line.startswith(_RUNNER_FRAME)), None)
    if at is None or not trace[at + 1].startswith(_THREAD_RUN_FRAME):
        return trace
    thread_run = trace[at + 1]
    out, enclosing_has_them, cause_has_them = trace[:at] + trace[at + 2 :], True, False
    for i, line in enumerate(out):
        if line.startswith("Caused by: "):
            cause_has_them, enclosing_has_them = enclosing_has_them, False
        more = _MORE.match(line)
        if more and cause_has_them:
            hidden = int(more.group(1))
            if hidden >= 3:  # main and below: the cause was thrown on the command thread too
                out[i], enclosing_has_them = f"\t... {hidden - 2} more", True
            elif hidden == 1:
                out[i] = thread_run
    return out


class RunnerError(RuntimeError):
    pass


class _Runner:
    """One ``MQAdminRunner`` JVM: a request line in, an answer line out, one command at a time."""

    def __init__(self, java: str, classpath: str, home: Path, env: dict[str, str]) -> None:
        self._log_path = home / "runner.log"  # the runner's own stderr: JVM warnings, output between commands
        cmd = [java, *JVM_FLAGS, *RUNNER_FLAGS, f"-Duser.home={home}", "-cp", classpath, RUNNER_CLASS]
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, bufsize=0
            )
        self._buffer = bytearray()
        self._next_id = 0
        self.lock = threading.Lock()
        try:
            ready = json.loads(self._read_line(RUNNER_START_TIMEOUT, "starting the mqadmin runner"))
        except BaseException:
            self.stop()
            raise
        self.available = bool(ready.get("ready"))
        if not self.available:
            self.unavailable_reason = str(ready.get("error"))
            self.stop()

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def run(self, argv: list[str], timeout: float) -> tuple[Output, bool]:
        """The command's output, and whether the runner is still fit for the next command (no client left
        registered, not too many threads)."""
        self._next_id += 1
        line = json.dumps({"id": self._next_id, "args": argv})
        answer = self.exchange(line, timeout, "mqadmin " + " ".join(argv))
        if answer.get("id") != self._next_id:
            raise RunnerError(f"the mqadmin runner answered {answer.get('id')} to request {self._next_id}")
        stdout, stderr = (_without_runner_frames(_decode(base64.b64decode(answer[k]))) for k in ("stdout", "stderr"))
        fit = answer["clients"] == 0 and answer["threads"] <= RUNNER_THREAD_LIMIT
        return Output(int(answer["exit"]), stdout + stderr), fit

    def exchange(self, line: str, timeout: float, what: str) -> dict[str, Any]:
        """Send one request line, return the answer; a runner that does not answer within ``timeout`` is killed
        (the command hangs: a JVM of its own would have been killed too)."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line.encode("utf-8") + b"\n")
            self._proc.stdin.flush()
        except OSError as exc:
            raise RunnerError(f"the mqadmin runner is gone ({exc}){self._log_tail()}") from exc
        try:
            answer: dict[str, Any] = json.loads(self._read_line(timeout, what))
        except subprocess.TimeoutExpired:
            self.stop(grace=0)
            raise
        if "error" in answer:
            raise RunnerError(f"the mqadmin runner refused {what!r}: {answer['error']}")
        return answer

    def _read_line(self, timeout: float, what: str) -> str:
        assert self._proc.stdout is not None
        fd, deadline = self._proc.stdout.fileno(), time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(what, timeout)
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise RunnerError(f"the mqadmin runner ended during {what!r}{self._log_tail()}")
                self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode("ascii")

    def _log_tail(self) -> str:
        try:
            return "; its log ends:\n" + self._log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self, grace: float = 5) -> None:
        """End of stdin ends the runner; kill it if it is not gone after ``grace`` seconds (a command hanging)."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


_RunnerKey = tuple[str, str, str]
_RUNNERS: dict[_RunnerKey, _Runner] = {}
_UNAVAILABLE: set[tuple[str, str]] = set()  # (java, classpath) whose runner could not trap System.exit
_RUNNERS_LOCK = threading.Lock()


def _run_shared(key: _RunnerKey, env: dict[str, str], argv: list[str], timeout: float) -> Output:
    """Run in the tool's runner (started when first needed, replaced when a command left it unfit or failed)."""
    runner = _runner_for(key, env)
    with runner.lock:
        try:
            output, fit = runner.run(argv, timeout)
        except BaseException:
            _stop_runner(key)
            raise
    if not fit:
        _stop_runner(key)
    return output


class _RunnerUnavailable(Exception):
    pass


def _runner_for(key: _RunnerKey, env: dict[str, str]) -> _Runner:
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(key)
        if runner is not None and runner.alive:
            return runner
        if runner is not None:
            runner.stop()
        java, classpath, home = key
        runner = _Runner(java, classpath, Path(home), env)
        if not runner.available:
            _UNAVAILABLE.add((java, classpath))
            raise _RunnerUnavailable(runner.unavailable_reason)
        _RUNNERS[key] = runner
        return runner


def _stop_runner(key: _RunnerKey) -> None:
    with _RUNNERS_LOCK:
        runner = _RUNNERS.pop(key, None)
    if runner is not None:
        runner.stop()


@atexit.register
def stop_all_runners() -> None:
    for key in list(_RUNNERS):
        _stop_runner(key)

"""Run the stock Apache RocketMQ admin tool (``mqadmin``: ``MQAdminStartup`` from Maven Central's rocketmq-tools)
against a name server, at either tool version the compat tests use (5.3.3 and 4.9.8).

:func:`build` resolves rocketmq-tools with Maven once per version (compat_tests/mqadmin/pom.xml) and returns the
runtime classpath; :class:`MQAdmin` runs one subcommand in a JVM and returns its exit code and output (the tool
prints errors such as ``CODE: 3 ... request type N not supported`` on stdout or stderr and often exits 0).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

MQADMIN_DIR = Path(__file__).resolve().parent / "mqadmin"
MAIN_CLASS = "org.apache.rocketmq.tools.command.MQAdminStartup"
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
    """The runtime classpath of rocketmq-tools ``version`` (resolved once per session)."""
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
            raise BuildError(f"maven could not resolve rocketmq-tools {version} (exit {proc.returncode}):\n{output}")
        _BUILT[mvn, version] = classpath_file.read_text().strip()
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
    home: Path  # the tool's user.home (its log files land there)

    def __call__(self, command: str, *args: str, timeout: float = 60) -> Output:
        """``mqadmin <command> -n <namesrv> <args>``."""
        self.home.mkdir(parents=True, exist_ok=True)
        logback = self.home / "conf" / "logback_tools.xml"  # the 4.9 tool reads ROCKETMQ_HOME/conf/ at start
        if not logback.exists():
            logback.parent.mkdir(parents=True, exist_ok=True)
            logback.write_text(_QUIET_LOGBACK, encoding="utf-8")
        cmd = [self.java, *JVM_FLAGS, f"-Duser.home={self.home}", "-cp", self.classpath, MAIN_CLASS, command,
               "-n", self.namesrv, *args]  # fmt: skip
        env = {**os.environ, "ROCKETMQ_HOME": str(self.home)}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        return Output(proc.returncode, proc.stdout + proc.stderr)

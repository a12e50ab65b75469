"""Every common ``mqadmin`` subcommand, both tool versions (5.3.3, 4.9.8), against pocketmq and Apache 5.3.3.

Run by hand: ``python -m compat_tests.mqadmin_matrix [--only pocketmq|apache] [--commands a,b] [--keep WORKDIR]``.
Needs java and mvn (the tools, the Java client driver and the Apache servers come from Maven Central). The commands
of a tool share one JVM (compat_tests/mqadmin_tool.py); ``POCKETMQ_MQADMIN_PER_JVM=1`` gives each its own.

For each server (``pocketmq up``; an Apache name server + broker, :class:`ApacheServers`) the same setup: the topic
``MatrixT`` (4 queues), 20 messages with keys ``mkey-<i>`` and tag ``TagA`` sent by the stock Java client, and a live
push consumer of the group ``matrix-g`` that consumed them all (its offsets committed). Then every subcommand of
:data:`COMMANDS` with both tools. The output is a markdown table: command | tool | pocketmq | Apache, where pocketmq's
cell is ``OK`` (the expected text is there), ``wrong`` (no error, but not what was expected) or ``fails`` (an error),
each with the first lines of what the tool printed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from compat_tests import harness, java_driver, mqadmin_tool
from compat_tests.apache import servers as apache

TOPIC, GROUP, SENT = "MatrixT", "matrix-g", 20
TAG, KEY_PREFIX = "TagA", "mkey-"
CLIENT_VERSION = "4.9.8"  # the Java client of the producer and the live consumer


@dataclass
class Target:
    """One server under test and what the setup learnt about it."""

    name: str
    namesrv: str
    broker_addr: str
    broker_name: str
    cluster: str
    sent: list[dict[str, object]] = field(default_factory=list)  # the producer's result lines
    client_id: str = ""  # the live consumer's, from consumerConnection


@dataclass(frozen=True)
class Command:
    """A subcommand, its arguments (from the target) and a regular expression its correct output matches."""

    name: str
    args: Callable[[Target, Path], list[str]]
    expect: Callable[[Target], str]
    only_tool: str | None = None  # e.g. haStatus exists in the 5.3.3 tool only
    extra_5: list[str] = field(default_factory=list)  # options the 5.3.3 tool requires and the 4.9.8 tool lacks


def _first(t: Target) -> dict[str, object]:
    return t.sent[0]


COMMANDS: list[Command] = [
    Command("clusterList", lambda t, d: [],
            lambda t: rf"{t.cluster}\s+{t.broker_name}\s+0\s+{re.escape(t.broker_addr)}"),
    Command("brokerStatus", lambda t, d: ["-b", t.broker_addr], lambda t: rf"msgPutTotalTodayNow\s*:\s*{SENT}\b"),
    Command("topicList", lambda t, d: [], lambda t: rf"(?m)^{TOPIC}$"),
    Command("topicRoute", lambda t, d: ["-t", TOPIC], lambda t: rf'"brokerName"\s*:\s*"{t.broker_name}"'),
    Command("topicStatus", lambda t, d: ["-t", TOPIC], lambda t: rf"{t.broker_name}\s+0\s+0\s+\d+"),
    Command("topicClusterList", lambda t, d: ["-t", TOPIC], lambda t: rf"(?m)^{t.cluster}\s*$"),
    Command("updateTopic", lambda t, d: ["-b", t.broker_addr, "-t", "MatrixT2", "-r", "2", "-w", "2"],
            lambda t: r"create topic to .* success"),
    Command("deleteTopic", lambda t, d: ["-c", t.cluster, "-t", "MatrixT2"], lambda t: r"delete topic \[MatrixT2\]"),
    Command("updateSubGroup", lambda t, d: ["-b", t.broker_addr, "-g", "matrix-g2"],
            lambda t: r"create subscription group to .* success"),
    Command("deleteSubGroup", lambda t, d: ["-b", t.broker_addr, "-g", "matrix-g2"],
            lambda t: r"delete subscription group \[matrix-g2\] from broker"),
    Command("getConsumerConfig", lambda t, d: ["-g", GROUP], lambda t: rf"groupName\s+=\s+{GROUP}"),
    Command("consumerProgress", lambda t, d: ["-g", GROUP], lambda t: rf"{TOPIC}\s+{t.broker_name}\s+0\s+\d+\s+\d+",
            extra_5=["-s", "true"]),
    Command("consumerConnection", lambda t, d: ["-g", GROUP], lambda t: rf"{re.escape(t.client_id)}"),
    Command("producerConnection", lambda t, d: ["-g", "CLIENT_INNER_PRODUCER", "-t", TOPIC],
            lambda t: r"\d+\s+\S+@\S+\s+\S+\s+JAVA"),
    Command("consumerStatus", lambda t, d: ["-g", GROUP, "-i", t.client_id], lambda t: r"#Consumer Subscription#"),
    Command("getBrokerConfig", lambda t, d: ["-b", t.broker_addr], lambda t: rf"brokerName\s+=\s+{t.broker_name}"),
    Command("updateBrokerConfig", lambda t, d: ["-b", t.broker_addr, "-k", "traceOn", "-v", "true"],
            lambda t: r"update broker config success"),
    Command("getNamesrvConfig", lambda t, d: [], lambda t: r"listenPort\s+=\s+\d+"),
    Command("wipeWritePerm", lambda t, d: ["-b", t.broker_name], lambda t: r"wipe write perm of broker\[.*OK"),
    Command("addWritePerm", lambda t, d: ["-b", t.broker_name], lambda t: r"add write perm of broker\[.*OK"),
    Command("queryMsgById", lambda t, d: ["-i", str(_first(t)["offsetMsgId"])],
            lambda t: rf"Keys:\s+\[?{KEY_PREFIX}0\b", extra_5=["-t", TOPIC]),
    Command("queryMsgByKey", lambda t, d: ["-t", TOPIC, "-k", f"{KEY_PREFIX}3"],
            lambda t: r"[0-9A-F]{32}\s+\d+\s+\d+"),
    Command("queryMsgByUniqueKey", lambda t, d: ["-t", TOPIC, "-i", str(_first(t)["msgId"])],
            lambda t: rf"Keys:\s+\[?{KEY_PREFIX}0\b"),
    Command("queryMsgByOffset", lambda t, d: ["-t", TOPIC, "-b", t.broker_name, "-i", str(_first(t)["queueId"]),
                                              "-o", str(_first(t)["queueOffset"])],
            lambda t: rf"Keys:\s+\[?{KEY_PREFIX}0\b"),
    Command("sendMessage", lambda t, d: ["-t", TOPIC, "-p", "from-mqadmin", "-k", "tool-key", "-c", TAG],
            lambda t: r"SEND_OK"),
    Command("consumeMessage", lambda t, d: ["-t", TOPIC, "-b", t.broker_name, "-i", "0", "-o", "0", "-c", "2"],
            lambda t: r"Consume ok"),
    Command("printMsg", lambda t, d: ["-t", TOPIC, "-d", "true"],
            lambda t: r"MSGID: \S+ MessageExt \[brokerName=.*topic='MatrixT'"),
    Command("statsAll", lambda t, d: [], lambda t: rf"{TOPIC}\s+{GROUP}\s"),
    Command("brokerConsumeStats", lambda t, d: ["-b", t.broker_addr], lambda t: rf"{TOPIC}\s+{GROUP}\s"),
    Command("queryCq", lambda t, d: ["-t", TOPIC, "-q", "0", "-i", "0", "-c", "2"], lambda t: r"physicOffset="),
    Command("cleanExpiredCQ", lambda t, d: ["-b", t.broker_addr], lambda t: r"success"),
    Command("haStatus", lambda t, d: ["-b", t.broker_addr], lambda t: r"#MasterAddr", only_tool="5.3.3"),
    Command("exportConfigs", lambda t, d: ["-c", t.cluster, "-f", str(d / "export")], lambda t: r"export .* success"),
    Command("updateOrderConf", lambda t, d: ["-t", TOPIC, "-m", "put", "-v", f"{t.broker_name}:4"],
            lambda t: r"update orderConf success"),
    Command("allocateMQ", lambda t, d: ["-t", TOPIC, "-i", "10.0.0.1,10.0.0.2"], lambda t: r'"10\.0\.0\.1"'),
    Command("checkMsgSendRT", lambda t, d: ["-t", TOPIC, "-a", "3", "-s", "16"], lambda t: r"Avg RT"),
    Command("updateKvConfig", lambda t, d: ["-s", "matrix", "-k", "k1", "-v", "v1"], lambda t: r"update kv config"),
    Command("deleteKvConfig", lambda t, d: ["-s", "matrix", "-k", "k1"], lambda t: r"delete kv config"),
    Command("cloneGroupOffset", lambda t, d: ["-s", GROUP, "-d", "matrix-clone", "-t", TOPIC],
            lambda t: r"clone group offset success"),
    Command("skipAccumulatedMessage", lambda t, d: ["-g", GROUP, "-t", TOPIC],
            lambda t: rf"{t.broker_name}\s+\d+\s+\d+"),
    Command("resetOffsetByTime", lambda t, d: ["-g", GROUP, "-t", TOPIC, "-s", "now"],
            lambda t: rf"{t.broker_name}\s+\d+\s+\d+"),
    # Last: the topic is read-only from here on (each tool takes it from 6 or 4 to 4).
    Command("updateTopicPerm", lambda t, d: ["-b", t.broker_addr, "-t", TOPIC, "-p", "4"],
            lambda t: r"update topic perm from \d to 4 in .* success|new perm equals to the old one"),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------------- servers


@contextmanager
def running_pocketmq(work: Path) -> Iterator[Target]:
    server = harness.PocketMQ(data_dir=work / "pocketmq-data")
    server.start()
    try:
        yield Target("pocketmq", server.namesrv_addr, server.broker_addr, "broker-a", "DefaultCluster")
    finally:
        server.stop()


@dataclass
class ApacheServers:
    """An Apache 5.3.3 name server and broker (Maven Central jars, compat_tests/apache): start once, reuse, stop."""

    java: str
    classpath: str
    work_dir: Path
    broker_name: str = "apache-b"
    cluster: str = "ApacheCluster"
    namesrv: apache.ApacheProcess | None = None
    broker: apache.ApacheProcess | None = None

    def start(self, timeout: float = 120.0) -> Target:
        try:
            self.namesrv = apache.apache_namesrv(self.java, self.classpath, self.work_dir / "namesrv")
            self.namesrv.start(timeout)
            self.broker = apache.apache_broker(
                self.java, self.classpath, self.work_dir / "broker", self.namesrv.addr, self.broker_name, self.cluster,
                # With the timer wheel off, Apache 5.3.3's DELETE_TOPIC_IN_BROKER fails (a null TimerMessageStore).
                timer_wheel=True,
            )  # fmt: skip
            self.broker.start(timeout)
            apache.wait_registered(self.namesrv.addr, self.cluster, self.broker_name, timeout)
        except BaseException:
            self.stop()
            raise
        return Target("apache", self.namesrv.addr, self.broker.addr, self.broker_name, self.cluster)

    def stop(self) -> None:
        for server in (self.broker, self.namesrv):
            if server is not None:
                server.stop(graceful=False)


@contextmanager
def running_apache(java: str, mvn: str, work: Path) -> Iterator[Target]:
    servers = ApacheServers(java, apache.build_classpath(mvn), work / "apache")
    target = servers.start()
    try:
        yield target
    finally:
        servers.stop()


# ---------------------------------------------------------------------------------------------------- setup


@contextmanager
def prepared(target: Target, tool: mqadmin_tool.MQAdmin, client: java_driver.JavaClient) -> Iterator[None]:
    """The topic, SENT messages with keys and a tag, and a live consumer that consumed them (offsets committed)."""
    out = tool("updateTopic", "-b", target.broker_addr, "-t", TOPIC, "-r", "4", "-w", "4")
    if "success" not in out.text:
        raise RuntimeError(f"updateTopic on {target.name}: {out.text[-2000:]}")
    time.sleep(1)  # the producer asks the name server for the route: the broker registers the topic at once
    messages = [java_driver.Message(f"matrix-{i}".encode(), tags=TAG, keys=[f"{KEY_PREFIX}{i}"]) for i in range(SENT)]
    target.sent = client.produce(target.namesrv, TOPIC, "matrix-producer", "sync", messages, retry_seconds=20)
    consumer = client.start_consume(target.namesrv, TOPIC, GROUP, expect=10_000, timeout=1800)
    try:
        consumer.wait_ready()
        if not consumer.wait_bodies([m.body for m in messages], 60):
            raise RuntimeError(f"the live consumer did not get the {SENT} messages\n{consumer.describe()}")
        time.sleep(6)  # a push consumer commits its offsets every 5 s
        out = tool("consumerConnection", "-g", GROUP)
        found = re.search(r"^(?:\s*\d+\s+)?(\S+@\S+)\s", out.text, re.M)
        target.client_id = found.group(1) if found else ""
        yield
    finally:
        consumer.kill()


# ---------------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Cell:
    verdict: str  # OK, wrong, fails, n/a
    summary: str


ERROR_MARKERS = ("Exception", "CODE:", "Error:", "error:", "not exist")


def judge(command: Command, target: Target, out: mqadmin_tool.Output) -> Cell:
    if "sub command" in out.text and "not exist" in out.text:
        return Cell("n/a", "no such subcommand in this tool")
    if re.search(command.expect(target), out.text):
        return Cell("OK", _summary(_meaningful(out)))
    if out.returncode != 0 or any(marker in out.text for marker in ERROR_MARKERS):
        causes = [line for line in _meaningful(out, 1000) if "CODE:" in line or line.startswith("Caused by")]
        return Cell("fails", _summary(causes[-1:] or _meaningful(out)))
    return Cell("wrong", _summary(_meaningful(out)))


def _summary(lines: list[str], width: int = 150) -> str:
    text = re.sub(r"\s+", " ", " | ".join(lines))
    text = re.sub(r"\b(?:[a-z]+\.){2,}([A-Z]\w*)", r"\1", text)  # class names without their packages
    return (text[:width] + "…") if len(text) > width else text


def _meaningful(out: mqadmin_tool.Output, limit: int = 4) -> list[str]:
    """The output lines worth a summary: no JVM warnings, no stack frames."""
    skip = ("WARNING:", "SLF4J", "RocketMQLog", "log4j", "at ", "...")
    return [line.strip() for line in out.lines() if not line.strip().startswith(skip)][:limit]


def run_all(
    target: Target, tools: dict[str, mqadmin_tool.MQAdmin], work: Path, only: set[str] | None
) -> dict[tuple[str, str], Cell]:
    cells: dict[tuple[str, str], Cell] = {}
    for command in COMMANDS:
        if only and command.name not in only:
            continue
        for version, tool in tools.items():
            if command.only_tool and command.only_tool != version:
                cells[command.name, version] = Cell("n/a", "no such subcommand in this tool")
                continue
            args = command.args(target, work / f"{target.name}-{version}")
            args += command.extra_5 if version.startswith("5.") else []
            out = tool(command.name, *args, timeout=90)
            (work / "outputs").mkdir(exist_ok=True)
            (work / "outputs" / f"{target.name}-{version}-{command.name}.txt").write_text(out.text)
            cells[command.name, version] = judge(command, target, out)
            print(f"[{target.name} {version}] {command.name}: {cells[command.name, version].verdict}", file=sys.stderr)
    return cells


def markdown(results: dict[str, dict[tuple[str, str], Cell]]) -> str:
    pocket, other = results.get("pocketmq", {}), results.get("apache", {})
    rows = ["| command | tool | pocketmq | Apache 5.3.3 |", "|---|---|---|---|"]
    for command, version in sorted(
        set(pocket) | set(other), key=lambda k: ([c.name for c in COMMANDS].index(k[0]), k[1])
    ):
        p, a = pocket.get((command, version)), other.get((command, version))
        p_text = f"**{p.verdict}**: {_cell(p.summary)}" if p else "-"
        a_text = f"{a.verdict}: {_cell(a.summary)}" if a else "-"
        rows.append(f"| `{command}` | {version} | {p_text} | {a_text} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("pocketmq", "apache"))
    parser.add_argument("--commands", help="comma-separated subcommands (default: all)")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one, deleted)")
    opts = parser.parse_args(argv)
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None or mvn is None:
        print("java and mvn are needed", file=sys.stderr)
        return 2
    only = set(opts.commands.split(",")) if opts.commands else None
    work = opts.keep or Path(tempfile.mkdtemp(prefix="mqadmin-matrix-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[tuple[str, str], Cell]] = {}
    try:
        classpaths = {v: mqadmin_tool.build(mvn, v) for v in mqadmin_tool.TOOL_VERSIONS}
        client = java_driver.JavaClient(java, CLIENT_VERSION, java_driver.build(mvn, CLIENT_VERSION), work / "client")
        starters = {
            "pocketmq": lambda: running_pocketmq(work),
            "apache": lambda: running_apache(java, mvn, work),
        }
        for name, start in starters.items():
            if opts.only and opts.only != name:
                continue
            try:
                with start() as target:
                    tools = {
                        v: mqadmin_tool.MQAdmin(java, cp, target.namesrv, work / f"home-{name}-{v}")
                        for v, cp in classpaths.items()
                    }
                    try:
                        with prepared(target, tools["5.3.3"], client):
                            results[name] = run_all(target, tools, work, only)
                    finally:
                        for tool in tools.values():
                            tool.close()
            finally:
                client.close()
    finally:
        if opts.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shared mqadmin JVM (compat_tests/mqadmin_tool.py, compat_tests/mqadmin/src): a command run there prints
and exits as in a JVM of its own, and a command that hangs costs its runner, not the next command. No server is
needed: the commands fail to reach an address nothing answers on, which the tool reports the same way."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests import harness, mqadmin_tool

NOBODY = "127.0.0.1:1"  # connection refused at once


@pytest.fixture(scope="module", params=mqadmin_tool.TOOL_VERSIONS)
def tools(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[mqadmin_tool.MQAdmin, mqadmin_tool.MQAdmin]]:
    """The same tool shared and per JVM, both pointed at NOBODY."""
    java, mvn = harness.require_tool("java"), harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed to run mqadmin")
    try:
        classpath = mqadmin_tool.build(mvn, request.param)
    except mqadmin_tool.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    home = Path(tmp_path_factory.mktemp(f"runner-{request.param}"))
    shared = mqadmin_tool.MQAdmin(java, classpath, NOBODY, home)
    try:
        yield shared, mqadmin_tool.MQAdmin(java, classpath, NOBODY, home, per_jvm=True)
    finally:
        shared.close()


def _runner_pid(tool: mqadmin_tool.MQAdmin) -> int | None:
    runner = mqadmin_tool._RUNNERS.get((tool.java, tool.classpath, str(tool.home)))
    return runner.pid if runner is not None else None


@pytest.mark.compat
@pytest.mark.parametrize(
    "argv",
    [
        ("clusterList", "--bogus"),  # the options parser prints the usage and calls System.exit(1)
        ("topicList", "-h"),  # the usage and System.exit(0)
        ("noSuchCommand",),
        ("topicRoute", "-t", "T"),  # an exception printed with its causes, exit 0
    ],
)
def test_a_command_prints_and_exits_as_in_a_jvm_of_its_own(
    tools: tuple[mqadmin_tool.MQAdmin, mqadmin_tool.MQAdmin], argv: tuple[str, ...]
) -> None:
    shared, per_jvm = tools
    expected = per_jvm(*argv)
    got = shared(*argv)
    assert (got.returncode, got.text) == (expected.returncode, expected.text)
    assert _runner_pid(shared) is not None, "a trapped System.exit leaves the runner running"


@pytest.mark.compat
def test_exit_codes_are_reported(tools: tuple[mqadmin_tool.MQAdmin, mqadmin_tool.MQAdmin]) -> None:
    shared, _ = tools
    assert shared("clusterList", "--bogus").returncode == 1
    assert shared("topicList", "-h").returncode == 0
    assert "-c,--clusterModel" in shared("topicList", "-h").text


@pytest.mark.compat
def test_system_properties_do_not_carry_over(tools: tuple[mqadmin_tool.MQAdmin, mqadmin_tool.MQAdmin]) -> None:
    """``-n`` sets rocketmq.namesrv.addr; the next command without ``-n`` must not find it set."""
    shared, per_jvm = tools
    shared("topicRoute", "-t", "T")
    key = (shared.java, shared.classpath, str(shared.home))
    env = {**os.environ, "ROCKETMQ_HOME": str(shared.home)}
    got = mqadmin_tool._run_shared(key, env, ["topicRoute", "-t", "T"], 60)
    expected = mqadmin_tool._run_in_own_jvm(
        per_jvm.java, per_jvm.classpath, per_jvm.home, env, ["topicRoute", "-t", "T"], 60
    )
    assert NOBODY not in got.text, got.text
    assert (got.returncode, got.text) == (expected.returncode, expected.text)


@pytest.mark.compat
def test_a_hanging_command_times_out_and_the_next_gets_a_new_runner(
    tools: tuple[mqadmin_tool.MQAdmin, mqadmin_tool.MQAdmin],
) -> None:
    shared, _ = tools
    shared("topicList", "-h")
    first = _runner_pid(shared)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        port = silent.getsockname()[1]
        silent_tool = dataclasses.replace(shared, namesrv=f"127.0.0.1:{port}")  # the same runner
        with pytest.raises(subprocess.TimeoutExpired) as timed_out:
            silent_tool("clusterList", timeout=1)
    assert "clusterList" in str(timed_out.value)
    assert _runner_pid(shared) is None, "the hanging runner is killed"
    assert shared("topicList", "-h").returncode == 0
    assert _runner_pid(shared) not in (None, first)


@pytest.mark.compat
def test_a_bad_request_is_refused_by_name(tools: tuple[mqadmin_tool.MQAdmin, mqadmin_tool.MQAdmin]) -> None:
    shared, _ = tools
    shared("topicList", "-h")
    runner = mqadmin_tool._RUNNERS[shared.java, shared.classpath, str(shared.home)]
    with pytest.raises(mqadmin_tool.RunnerError, match=r"expected '\{'"):
        runner.exchange("not json", 10, "a line that is not JSON")
    assert shared("topicList", "-h").returncode == 0


THREAD_RUN = "\tat java.base/java.lang.Thread.run(Thread.java:840)"
RUNNER = "\tat pocketmq.compat.mqadmin.MQAdminRunner.lambda$runMain$1(MQAdminRunner.java:177)"
MAIN = "\tat org.apache.rocketmq.tools.command.MQAdminStartup.main(MQAdminStartup.java:99)"
MAIN0 = "\tat org.apache.rocketmq.tools.command.MQAdminStartup.main0(MQAdminStartup.java:148)"


def test_runner_frames_are_taken_out_of_stack_traces() -> None:
    shared = "\n".join([
        "before", "x.SubCommandException: failed", "\tat x.Cmd.execute(Cmd.java:1)", MAIN0, MAIN, RUNNER,
        THREAD_RUN, "Caused by: x.Inner: same thread", "\tat x.Admin.call(Admin.java:5)", "\t... 5 more",
        "Caused by: x.Netty: another thread", "\tat io.netty.Loop.run(Loop.java:9)", "\t... 1 more", "after", "",
    ])  # fmt: skip
    own_jvm = "\n".join([
        "before", "x.SubCommandException: failed", "\tat x.Cmd.execute(Cmd.java:1)", MAIN0, MAIN,
        "Caused by: x.Inner: same thread", "\tat x.Admin.call(Admin.java:5)", "\t... 3 more",
        "Caused by: x.Netty: another thread", "\tat io.netty.Loop.run(Loop.java:9)", THREAD_RUN, "after", "",
    ])  # fmt: skip
    assert mqadmin_tool._without_runner_frames(shared) == own_jvm


def test_a_cause_of_a_cause_from_another_thread_keeps_its_count() -> None:
    """A cause from another thread shares only ``Thread.run`` with the command thread (``... 1 more``, where a JVM
    of its own lists the frame); its own cause counts against it and is left alone."""
    shared = "\n".join([
        "x.E: top", MAIN, RUNNER, THREAD_RUN, "Caused by: x.A: netty", "\tat io.netty.A.run(A.java:1)", "\t... 1 more",
        "Caused by: x.B: netty too", "\tat io.netty.B.run(B.java:2)", "\t... 1 more",
    ])  # fmt: skip
    own_jvm = "\n".join([
        "x.E: top", MAIN, "Caused by: x.A: netty", "\tat io.netty.A.run(A.java:1)", THREAD_RUN,
        "Caused by: x.B: netty too", "\tat io.netty.B.run(B.java:2)", "\t... 1 more",
    ])  # fmt: skip
    assert mqadmin_tool._without_runner_frames(shared) == own_jvm


def test_output_without_runner_frames_is_untouched() -> None:
    text = "\tat x.A.b(A.java:1)\n\t... 4 more\nplain\n"
    assert mqadmin_tool._without_runner_frames(text) == text

"""Fixtures shared by the compatibility tests (a running pocketmq per test module), and the conformance report:
the outcome of every compat test of a session goes into docs/conformance.md and compat_tests/conformance.json (see
compat_tests/conformance.py; ``POCKETMQ_CONFORMANCE_REPORT=0`` turns that off)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests import conformance, go_driver, harness, java5_driver, java_driver, node_driver, rust_driver
from compat_tests.harness import PocketMQ

_RECORDER = conformance.Recorder()


# ------------------------------------------------------------------------------------ client toolchains
# Each driver is built (or installed) once per session and shared by every module using that client. A missing
# toolchain skips on a laptop; with CI set, harness.require_tool and the find_* helpers raise instead.


@pytest.fixture(scope="session")
def java_builds() -> dict[str, tuple[str, str]]:
    """The Java drivers compiled against every client version: version -> (java, classpath)."""
    java = harness.require_tool("java")
    mvn = harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed for the Java client compatibility tests")
    builds = {}
    for version in java_driver.CLIENT_VERSIONS:
        try:
            builds[version] = (java, java_driver.build(mvn, version))
        except java_driver.BuildError as exc:
            pytest.fail(str(exc), pytrace=False)
    return builds


@pytest.fixture(scope="session")
def go_build() -> go_driver.Build:
    """The Go driver (module download + compile on a fresh machine)."""
    go = go_driver.find_go()
    if go is None:
        pytest.skip("go is needed for the Go client compatibility tests")
    try:
        built = go_driver.build(go)
    except go_driver.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(f"\n[go] rocketmq-client-go/v2 {built.client_version} with {built.go_version}: build {built.seconds:.1f} s")
    return built


@pytest.fixture(scope="session")
def rust_build() -> rust_driver.Build:
    """The Rust driver (crate download + compile on a fresh machine)."""
    cargo = rust_driver.find_cargo()
    if cargo is None:
        pytest.skip("cargo is needed for the Rust client compatibility tests")
    try:
        built = rust_driver.build(cargo)
    except rust_driver.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(
        f"\n[rust] rocketmq-client-rust {built.client_version} with {built.rustc_version}: build {built.seconds:.1f} s"
    )
    return built


@pytest.fixture(scope="session")
def node_install() -> node_driver.Install:
    """The Node driver's dependencies (``npm ci``)."""
    tools = node_driver.find_tools()
    if tools is None:
        pytest.skip("node and npm are needed for the Node.js client compatibility tests")
    try:
        installed = node_driver.install(*tools)
    except node_driver.InstallError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(
        f"\n[node] ali-ons {installed.client_version} on node {installed.node_version}: "
        f"{installed.command} took {installed.seconds:.1f} s"
    )
    return installed


# ------------------------------------------------------------------------------------------ clients


@pytest.fixture
def go(go_build: go_driver.Build, tmp_path: Path) -> Iterator[go_driver.GoClient]:
    """A stock-Go-client driver for one test (its processes stopped after it)."""
    client = go_driver.GoClient(binary=go_build.binary, work_dir=tmp_path / "go")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def rust(rust_build: rust_driver.Build, tmp_path: Path) -> Iterator[rust_driver.RustClient]:
    """A stock-Rust-client driver for one test."""
    client = rust_driver.RustClient(binary=rust_build.binary, work_dir=tmp_path / "rust")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def node(node_install: node_driver.Install, tmp_path: Path) -> Iterator[node_driver.NodeClient]:
    """A stock-Node-client (ali-ons) driver for one test."""
    client = node_driver.NodeClient(node=node_install.node, work_dir=tmp_path / "node")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def java5(tmp_path: Path) -> Iterator[java5_driver.Java5Client]:
    """A stock Java 5.x (gRPC) client driver for one test."""
    client = java5_driver.Java5Client(build=java5_driver.build_or_skip(), work_dir=tmp_path)
    try:
        yield client
    finally:
        client.close()


# ------------------------------------------------------------------------------------------ servers


@pytest.fixture(scope="module")
def pocketmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PocketMQ]:
    server = PocketMQ(data_dir=Path(tmp_path_factory.mktemp("pocketmq")) / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------ conformance report


def _report_enabled() -> bool:
    return os.environ.get(conformance.ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def pytest_itemcollected(item: pytest.Item) -> None:
    if not _RECORDER.collected and _report_enabled():
        _RECORDER.commit_at_start = conformance.pocketmq_commit()
    _RECORDER.collect(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _RECORDER.record(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    outcomes = _RECORDER.finished()
    if not outcomes or not _report_enabled() or session.config.option.collectonly:
        return
    args = session.config.invocation_params.args
    command = os.environ.get("POCKETMQ_CONFORMANCE_COMMAND") or "python -m pytest " + shlex.join(args)
    try:
        conformance.write_report(
            _RECORDER.collected, outcomes, command=command.strip(), commit_at_start=_RECORDER.commit_at_start
        )
    except Exception as exc:  # the report must never turn a test run into an internal error
        _RECORDER.note = f"conformance report NOT written: {type(exc).__name__}: {exc}"
        return
    written = ", ".join(str(p.relative_to(conformance.REPO)) for p in (conformance.DOC_PATH, conformance.JSON_PATH))
    _RECORDER.note = f"conformance report of {len(outcomes)} compat tests written to {written}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _RECORDER.note:
        terminalreporter.write_line(_RECORDER.note)

"""``serve()``: a running pocketmq for a test, as a subprocess or in a thread of the caller's process."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 60.0  # a loaded 2-core CI machine: the gRPC imports alone can take seconds
STOP_TIMEOUT_S = 15.0
TRACEBACK = "Traceback (most recent call last)"


class ServeError(RuntimeError):
    """pocketmq did not start, or died, stopped badly or logged a traceback (the message has its log)."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the running pocketmq answers (the ``--ready-file`` contents)."""

    namesrv_addr: str  # HOST:PORT, for namesrvAddr / setNamesrvAddr
    broker_addr: str
    grpc_endpoint: str | None  # HOST:PORT of the 5.x gRPC endpoint
    http_endpoint: str | None  # http://HOST:PORT: /metrics, /api/..., the console
    data_dir: Path
    pid: int
    clock: str = "system"  # "virtual" with serve(clock="virtual"): then advance() moves it
    log_path: Path | None = None  # its log (a subprocess's; in-process, logging goes where the caller's goes)

    def advance(self, duration: str | int) -> dict[str, Any]:
        """Move a virtual clock (``serve(clock="virtual")``) by ``duration`` (``"2h"``, ``"90s"``, ``"500ms"`` or
        ms), firing everything due on the way in order; returns once it is handed over (docs/testing.md)."""
        from pocketmq.clock_command import advance

        if self.http_endpoint is None:
            raise ServeError("advance() needs the HTTP port (serve(http=True))")
        return advance(self.http_endpoint, duration)

    @classmethod
    def from_ready_file(cls, data: dict[str, Any]) -> Endpoints:
        return cls(
            namesrv_addr=data["namesrvAddr"],
            broker_addr=data["brokerAddr"],
            grpc_endpoint=data.get("grpcEndpoint"),
            http_endpoint=data.get("httpEndpoint"),
            data_dir=Path(data["dataDir"]),
            pid=int(data["pid"]),
            clock=str(data.get("clock", "system")),
        )


@contextlib.contextmanager
def serve(
    *,
    in_process: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    broker_conf: dict[str, str] | None = None,
    grpc: bool = True,
    http: bool = True,
    clock: str = "system",
    timeout: float = START_TIMEOUT_S,
) -> Iterator[Endpoints]:
    """A name server and a broker on 127.0.0.1 free ports, ready when this yields; stopped (and a temporary store
    removed) when the block ends. A subprocess that died, did not exit 0 when stopped or logged a traceback raises
    ``ServeError`` then (unless the block already raised). ``broker_conf``: broker.conf keys (``fileReservedTime``,
    ``aclEnable``...). ``clock="virtual"``: time stands still until ``Endpoints.advance("2h")`` moves it."""
    if clock not in ("system", "virtual"):
        raise ValueError(f'clock must be "system" or "virtual", not {clock!r}')
    own_dir = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="pocketmq-test-")) if own_dir else Path(data_dir)  # type: ignore[arg-type]
    root.mkdir(parents=True, exist_ok=True)
    try:
        runner = _in_thread if in_process else _in_subprocess
        with runner(root, broker_conf or {}, grpc=grpc, http=http, clock=clock, timeout=timeout) as endpoints:
            yield endpoints
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


def _up_arguments(root: Path, broker_conf: dict[str, str], *, grpc: bool, http: bool, clock: str) -> list[str]:
    args = ["--data-dir", str(root / "data"), "--host", "127.0.0.1", "--namesrv-port", "0", "--broker-port", "0"]
    args += ["--grpc-port", "0" if grpc else "-1", "--http-port", "0" if http else "-1", "--clock", clock]
    if broker_conf:
        conf = root / "broker.conf"
        conf.write_text("".join(f"{key}={value}\n" for key, value in broker_conf.items()), encoding="utf-8")
        args += ["--config", str(conf)]
    return args


@contextlib.contextmanager
def _in_subprocess(
    root: Path, broker_conf: dict[str, str], *, grpc: bool, http: bool, clock: str, timeout: float
) -> Iterator[Endpoints]:
    ready_file, log_path = root / "ready.json", root / "pocketmq.log"
    cmd = [sys.executable, "-m", "pocketmq", "up", *_up_arguments(root, broker_conf, grpc=grpc, http=http, clock=clock)]
    cmd += ["--ready-file", str(ready_file)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETMQ_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not ready_file.exists():
            if proc.poll() is not None:
                raise ServeError(f"pocketmq exited with {proc.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise ServeError(f"pocketmq was not ready within {timeout:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.02)
        endpoints = Endpoints.from_ready_file(json.loads(ready_file.read_text(encoding="utf-8")))
        yield dataclasses.replace(endpoints, log_path=log_path)
    except BaseException:
        _stop(proc)
        raise
    died = proc.poll()
    code = _stop(proc)
    _check_stopped(log_path, died, code)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _check_stopped(log_path: Path, died: int | None, code: int) -> None:
    """A test that passed still fails when pocketmq died by itself, did not stop cleanly or logged a traceback:
    otherwise a broker crash shows up only as a client's connection errors, or not at all."""
    log = log_path.read_text(encoding="utf-8", errors="replace")
    trace = log.find(TRACEBACK)
    if died is not None:
        problem = f"exited by itself with status {died}"
    elif code != 0:
        problem = f"exited with status {code} when stopped"
    elif trace >= 0:
        problem = "logged a traceback"
    else:
        return
    excerpt = log[trace:][:4000] if trace >= 0 else _tail(log_path)
    raise ServeError(f"pocketmq {problem} ({log_path}):\n{excerpt}")


@contextlib.contextmanager
def _in_thread(
    root: Path, broker_conf: dict[str, str], *, grpc: bool, http: bool, clock: str, timeout: float
) -> Iterator[Endpoints]:
    """The same ``pocketmq up`` on an event loop of its own in a daemon thread (a signal handler needs the main
    thread, so the thread runs the servers without one and is stopped by cancelling its task group)."""
    import anyio

    from pocketmq.cli import build_broker_config, parser, serve_up

    args = parser().parse_args(["up", *_up_arguments(root, broker_conf, grpc=grpc, http=http, clock=clock)])
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            state["stop"] = lambda: tg.cancel_scope.cancel()
            state["token"] = anyio.lowlevel.current_token()
            try:
                state["endpoints"] = await serve_up(tg, args, build_broker_config(args, None))
            finally:
                started.set()
        # Connections closed or aborted as the servers stopped, or accepted just then, let go of their sockets in
        # callbacks of later loop rounds: give them those rounds before the loop ends.
        await anyio.sleep(0.1)

    def run() -> None:
        try:
            anyio.run(main)
        except BaseException as err:  # reported to the caller below
            state["error"] = err
            started.set()

    thread = threading.Thread(target=run, name="pocketmq", daemon=True)
    thread.start()
    if not started.wait(timeout) or "endpoints" not in state:
        if "stop" in state:
            anyio.from_thread.run_sync(state["stop"], token=state["token"])
        thread.join(STOP_TIMEOUT_S)
        raise ServeError(f"pocketmq did not start in this process: {state.get('error', 'timed out')!r}")
    try:
        yield state["endpoints"]
    finally:
        with contextlib.suppress(RuntimeError):  # the loop already ended
            anyio.from_thread.run_sync(state["stop"], token=state["token"])
        thread.join(STOP_TIMEOUT_S)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

"""Shared fixtures: a name server and a broker running in the test's event loop, and wire clients for them.

Each server runs in its own asyncio task that owns the server's anyio task group, so no cancel scope is held
across a fixture's ``yield`` (pytest-asyncio runs fixture setup, the test and teardown in different tasks).
Stopping a server cancels its task, which runs the server's own shutdown path (the broker unregisters and
closes its store), exactly as a signal does in ``pocketmq up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest

from codec.command import RemotingCommand, request
from gateway.broker import Broker
from gateway.clock import Clock
from gateway.config import BrokerConfig
from nameserver.server import NameServer
from remoting.client import RemotingClient

HOST = "127.0.0.1"


async def _start_in_task(run: Callable[..., Awaitable[None]], name: str) -> asyncio.Task[None]:
    """Run ``run(task_status=...)`` inside a task group owned by a new task; return once it has started."""
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def host() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(run)
            started.set_result(None)

    task = asyncio.create_task(host(), name=name)
    await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        task.result()  # raises why the server could not start
        raise RuntimeError(f"{name} stopped before it started")
    return task


async def _stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Cluster:
    """Starts name servers and brokers on 127.0.0.1 port 0 with data under ``tmp_path``; stops them at teardown."""

    def __init__(self, tmp_path: pathlib.Path) -> None:
        self.tmp_path = tmp_path
        self.namesrv: NameServer | None = None
        self.broker: Broker | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}  # id(server) -> its task
        self._clients: list[RemotingClient] = []

    @property
    def namesrv_addr(self) -> str:
        assert self.namesrv is not None, "start_namesrv() first"
        return f"{HOST}:{self.namesrv.port}"

    async def start_namesrv(self, **kwargs: Any) -> NameServer:
        namesrv = NameServer(HOST, 0, **kwargs)
        self._tasks[id(namesrv)] = await _start_in_task(namesrv.run, "namesrv")
        self.namesrv = namesrv
        return namesrv

    def broker_config(self, **overrides: Any) -> BrokerConfig:
        """Port 0, data in ``tmp_path/broker``, registered with the running name server (if any)."""
        values: dict[str, Any] = {
            "host": HOST,
            "port": 0,
            "advertise_host": HOST,
            "data_dir": self.tmp_path / "broker",
            "namesrv_addrs": [self.namesrv_addr] if self.namesrv is not None else [],
            "grpc_port": None,  # tests that want the gRPC endpoint ask for grpc_port=0
            "http_port": None,  # likewise the HTTP port (http_port=0)
        }
        values.update(overrides)
        return BrokerConfig(**values)

    async def start_broker(self, clock: Clock | None = None, **overrides: Any) -> Broker:
        broker = Broker(self.broker_config(**overrides), clock=clock)
        self._tasks[id(broker)] = await _start_in_task(broker.run, "broker")
        self.broker = broker
        return broker

    async def stop(self, server: NameServer | Broker) -> None:
        task = self._tasks.pop(id(server), None)
        if task is not None:
            await _stop_task(task)

    async def connect(self, server: NameServer | Broker | int) -> RemotingClient:
        """A new client connection to a server (or a port); closed at teardown."""
        port = server if isinstance(server, int) else _port_of(server)
        client = await RemotingClient.connect(HOST, port)
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        # Brokers first, so they can unregister from a name server that is still up.
        for key in sorted(self._tasks, key=lambda k: self._tasks[k].get_name() != "broker"):
            await _stop_task(self._tasks.pop(key))


def _port_of(server: NameServer | Broker) -> int:
    return server.port if isinstance(server, NameServer) else server.config.port


@pytest.fixture
async def cluster(tmp_path: pathlib.Path) -> AsyncIterator[Cluster]:
    """Nothing started yet; the test starts what it needs."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def namesrv(cluster: Cluster) -> NameServer:
    return await cluster.start_namesrv()


@pytest.fixture
async def broker(cluster: Cluster, namesrv: NameServer) -> Broker:
    """A broker with the default configuration, registered with ``namesrv``."""
    return await cluster.start_broker()


@pytest.fixture
async def ns_client(cluster: Cluster, namesrv: NameServer) -> RemotingClient:
    return await cluster.connect(namesrv)


@pytest.fixture
async def client(cluster: Cluster, broker: Broker) -> RemotingClient:
    return await cluster.connect(broker)


async def invoke(
    client: RemotingClient, code: int, ext: dict[str, str] | None = None, body: bytes = b"", timeout: float = 3.0
) -> RemotingCommand:
    return await client.invoke(request(code, ext, body), timeout=timeout)


@pytest.fixture
def call() -> Callable[..., Awaitable[RemotingCommand]]:
    """``await call(client, code, ext, body)``: one request, its response (test modules cannot import each other)."""
    return invoke

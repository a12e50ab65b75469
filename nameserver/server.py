"""The name server process: a remoting listener over the route table, plus the broker-expiry scan."""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskStatus

from acl.validator import PlainAclFile
from codec.codes import RequestCode
from nameserver.handlers import NameServerHandlers, _now_ms
from nameserver.routes import RouteTable
from remoting.acl_guard import AclGuard
from remoting.connection import Connection
from remoting.limits import ConnectionLimits, ConnectionSlots
from remoting.server import RemotingServer
from runtime.supervise import supervised

log = logging.getLogger("pocketmq.namesrv")

SCAN_INTERVAL_S = 5.0


class NameServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9876,
        *,
        limits: ConnectionLimits | None = None,
        slots: ConnectionSlots | None = None,
        acl_file: PlainAclFile | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.routes = RouteTable()
        self.handlers = NameServerHandlers(self.routes)
        table = self.handlers.table()
        if acl_file is not None:  # brokers may (un)register only from a white-listed address or signed by an admin
            codes = (RequestCode.REGISTER_BROKER, RequestCode.UNREGISTER_BROKER)
            AclGuard(acl_file.decide_registration, codes).install(table)
        self.server = RemotingServer("namesrv", table, limits=limits, slots=slots, on_close=self._connection_closed)

    def _connection_closed(self, conn: Connection) -> None:
        for addr in self.routes.connection_closed(conn.id):
            log.info("broker %s unregistered: its connection closed", addr)

    async def _scan(self) -> None:
        while True:
            await anyio.sleep(SCAN_INTERVAL_S)
            for addr in self.routes.expire(_now_ms()):
                log.warning("broker %s expired: no registration for 120 s", addr)

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            port = await tg.start(self.server.serve, self.host, self.port)
            self.port = port
            self.handlers.listen_host, self.handlers.listen_port = self.host, port
            tg.start_soon(supervised, "broker expiry", self._scan)
            task_status.started(port)

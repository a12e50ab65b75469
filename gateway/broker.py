"""The broker: wires the store, the topic table, the client registry and the request handlers to a listener."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from acl.validator import PlainAclFile
from codec.codes import RequestCode, ResponseCode
from codec.command import RemotingCommand
from codec.heartbeat import make_subscription
from gateway.clock import Clock, SystemClock
from gateway.config import BrokerConfig, acl_file_path
from gateway.context import BrokerContext, now_ms
from gateway.handlers.admin import AdminHandlers
from gateway.handlers.clients import ClientHandlers
from gateway.handlers.locks import LockHandlers
from gateway.handlers.offsets import OffsetHandlers
from gateway.handlers.pull import PullHandler
from gateway.handlers.query import QueryHandlers
from gateway.handlers.reply import ReplyHandler
from gateway.handlers.send import SendHandler
from gateway.handlers.sendback import SendBackHandler
from gateway.handlers.transaction import EndTransactionHandler
from gateway.registration import Registrar
from gateway.topics import TopicTable
from remoting.acl_guard import AclGuard
from remoting.connection import Connection
from remoting.limits import ConnectionSlots
from remoting.request_hooks import RequestHooks
from remoting.server import DispatchTable, RemotingServer
from runtime.supervise import supervised
from store.sqlite import SqliteStore

if TYPE_CHECKING:
    from remoting.grpc_server import GrpcServer

log = logging.getLogger("pocketmq.broker")

CLIENT_SCAN_INTERVAL_S = 10.0
WRITE_GRACE_S = 0.5


class Broker:
    def __init__(
        self,
        config: BrokerConfig,
        clock: Clock | None = None,
        slots: ConnectionSlots | None = None,
        acl_file: PlainAclFile | None = None,
    ) -> None:
        self.config = config
        self.store = SqliteStore(config.data_dir / "store.db", sync_flush=config.sync_flush)
        self.topics = TopicTable(
            self.store,
            cluster=config.cluster,
            broker_name=config.broker_name,
            auto_create=config.auto_create_topic,
            default_queue_nums=config.default_topic_queue_nums,
            validate_system_topics=config.validate_system_topic_when_update_topic,
            on_change=self._topics_changed,
        )
        self.ctx = BrokerContext(config, self.store, self.topics, clock or SystemClock())
        self.connections = self.ctx.connections
        self.admin = AdminHandlers(self.ctx, now_ms())
        self.registrar = Registrar(config, self.admin.topic_config_wrapper)
        self.client_handlers = ClientHandlers(self.ctx, self.connections)
        self.send_handler = SendHandler(self.ctx)
        # ACL 1.0: read (or refused, AclConfigError) before anything listens; no check at all when it is off.
        if acl_file is None and config.acl_enable:
            acl_file = PlainAclFile(acl_file_path(config))
        self.acl_file = acl_file if config.acl_enable else None
        table = self.dispatch_table()
        if self.acl_file is not None:
            AclGuard(self.acl_file.decide).install(table)
            admin = self.acl_file.config.first_admin()
            if admin is not None:
                self.registrar.credentials = (admin.access_key, admin.secret_key)
            else:
                log.warning("the ACL file has no admin account: broker registrations go unsigned, and a pocketmq "
                            "name server with ACL accepts them only from a white-listed address")  # fmt: skip
            if config.grpc_port is not None:
                log.warning("ACL 1.0 checks remoting requests only: the gRPC endpoint (5.x clients) is not checked; "
                            "--grpc-port -1 turns it off (docs/acl.md)")  # fmt: skip
        # Fault rules and the protocol trace (docs/testing.md): nothing in front of the handlers until wanted.
        self.hooks = RequestHooks()
        self.hooks.attach(table, "broker")
        self.server = RemotingServer(
            "broker",
            table,
            limits=config.connection_limits(),
            slots=slots or ConnectionSlots(config.server_max_connections, config.server_max_buffered_bytes),
            on_open=self._opened,
            on_close=self._closed,
        )
        # A group commit answers its sends from within itself; their answers are written as soon as it is done.
        self.store.after_answers.append(self.server.flush_writes)
        self.grpc_server: GrpcServer | None = None
        self.grpc_service: Any = None  # gateway.grpc.service.MessagingService, once started
        self.grpc_port: int | None = None
        self.grpc_settled = anyio.Event()  # the gRPC endpoint is listening, or will not be
        self.http_port: int | None = None
        self.http_settled = anyio.Event()  # the HTTP port is listening, or will not be

    @property
    def grpc_host(self) -> str:
        return self.config.advertise_host if self.config.host in ("0.0.0.0", "::", "") else self.config.host

    async def _serve_grpc(self) -> None:
        cfg = self.config
        try:
            if cfg.grpc_port is None:
                return
            # Imported off the loop: protobuf, h2 and the generated modules are not part of the remoting start-up.
            endpoint = await anyio.to_thread.run_sync(importlib.import_module, "gateway.grpc.endpoint")
            self.grpc_server, self.grpc_service = endpoint.build(self)
            self.hooks.attach_grpc(self.grpc_server, endpoint.CallFaults(self.hooks.faults))
            # The TLS context (and a self-signed certificate on the first start) before clients arrive, off the loop.
            await anyio.to_thread.run_sync(self.grpc_server.tls_context)
            async with anyio.create_task_group() as tg:
                try:
                    self.grpc_port = await tg.start(self.grpc_server.serve, cfg.host, cfg.grpc_port)
                except OSError as err:
                    if cfg.grpc_port_explicit:
                        raise
                    log.warning(
                        "gRPC endpoint off: port %d is taken (%s); pass --grpc-port 0 for a free one",
                        cfg.grpc_port,
                        err,
                    )
                    return
                log.info("gRPC endpoint listening on %s:%d", cfg.host, self.grpc_port)
                self.grpc_settled.set()
        finally:
            self.grpc_settled.set()

    async def _serve_http(self) -> None:
        cfg = self.config
        try:
            if cfg.http_port is None:
                return
            # Imported off the loop: prometheus_client is not part of the remoting start-up.
            metrics = await anyio.to_thread.run_sync(importlib.import_module, "gateway.metrics")
            http = await anyio.to_thread.run_sync(importlib.import_module, "gateway.http_endpoint")
            admin_api = await anyio.to_thread.run_sync(importlib.import_module, "gateway.admin_api")
            console = await anyio.to_thread.run_sync(importlib.import_module, "gateway.console_files")
            faults_api = await anyio.to_thread.run_sync(importlib.import_module, "gateway.faults_api")
            collector = metrics.BrokerCollector(self.ctx, hooks=self.hooks)

            async def scrape(request: Any) -> Any:
                return http.HttpResponse(metrics.CONTENT_TYPE, await metrics.render(collector))

            api = admin_api.AdminApi(
                self.ctx, self.send_handler, lambda: self.grpc_service.sessions if self.grpc_service else None
            )
            static = await anyio.to_thread.run_sync(console.console_routes)
            hooks_api = faults_api.HooksApi(self.hooks, self.config.data_dir)
            endpoint = http.HttpEndpoint({("GET", "/metrics"): scrape, **api.routes(), **hooks_api.routes(), **static})
            async with anyio.create_task_group() as tg:
                try:
                    self.http_port = await tg.start(endpoint.serve, cfg.host, cfg.http_port)
                except OSError as err:
                    if cfg.http_port_explicit:
                        raise
                    log.warning("HTTP port off: %d is taken (%s); --http-port 0 picks a free one", cfg.http_port, err)
                    return
                log.info("HTTP port (console, /api, /metrics) listening on %s:%d", cfg.host, self.http_port)
                self.http_settled.set()
        finally:
            self.http_settled.set()

    def _topics_changed(self) -> None:
        self.registrar.trigger()

    def _opened(self, conn: Connection) -> None:
        self.connections[conn.id] = conn

    def _closed(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self.client_handlers.connection_closed(conn)

    def dispatch_table(self) -> DispatchTable:
        t = DispatchTable()
        send = self.send_handler
        for code in (
            RequestCode.SEND_MESSAGE,
            RequestCode.SEND_MESSAGE_V2,
            RequestCode.SEND_BATCH_MESSAGE,
        ):
            t.register(code, send)
        pull = PullHandler(self.ctx)
        t.register(RequestCode.PULL_MESSAGE, pull)
        t.register(RequestCode.LITE_PULL_MESSAGE, pull)
        offsets = OffsetHandlers(self.ctx)
        t.register(RequestCode.QUERY_CONSUMER_OFFSET, offsets.query_consumer_offset)
        t.register(RequestCode.UPDATE_CONSUMER_OFFSET, offsets.update_consumer_offset)
        t.register(RequestCode.GET_MAX_OFFSET, offsets.max_offset)
        t.register(RequestCode.GET_MIN_OFFSET, offsets.min_offset)
        t.register(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, offsets.search_offset)
        t.register(RequestCode.GET_EARLIEST_MSG_STORETIME, offsets.earliest_store_time)
        c = self.client_handlers
        t.register(RequestCode.HEART_BEAT, c.heart_beat)
        t.register(RequestCode.UNREGISTER_CLIENT, c.unregister_client)
        t.register(RequestCode.GET_CONSUMER_LIST_BY_GROUP, c.consumer_list)
        t.register(RequestCode.CHECK_CLIENT_CONFIG, c.check_client_config)
        locks = LockHandlers(self.ctx)
        t.register(RequestCode.LOCK_BATCH_MQ, locks.lock)
        t.register(RequestCode.UNLOCK_BATCH_MQ, locks.unlock)
        t.register(RequestCode.CONSUMER_SEND_MSG_BACK, SendBackHandler(self.ctx))
        t.register(RequestCode.END_TRANSACTION, EndTransactionHandler(self.ctx))
        reply = ReplyHandler(self.ctx, send)
        t.register(RequestCode.SEND_REPLY_MESSAGE, reply)
        t.register(RequestCode.SEND_REPLY_MESSAGE_V2, reply)
        q = QueryHandlers(self.ctx)
        t.register(RequestCode.QUERY_MESSAGE, q.query_message)
        t.register(RequestCode.VIEW_MESSAGE_BY_ID, q.view_message)
        a = self.admin
        t.register(RequestCode.UPDATE_AND_CREATE_TOPIC, a.create_topic)
        t.register(RequestCode.DELETE_TOPIC_IN_BROKER, a.delete_topic)
        t.register(RequestCode.GET_ALL_TOPIC_CONFIG, a.all_topic_config)
        t.register(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, a.create_group)
        t.register(RequestCode.DELETE_SUBSCRIPTIONGROUP, a.delete_group)
        t.register(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG, a.all_group_config)
        t.register(RequestCode.VIEW_BROKER_STATS_DATA, a.view_stats_data)
        t.register(RequestCode.GET_TOPIC_CONFIG, a.topic_config)
        t.register(RequestCode.GET_BROKER_CONFIG, a.broker_config)
        t.register(RequestCode.UPDATE_BROKER_CONFIG, a.update_broker_config)
        t.register(RequestCode.GET_BROKER_CONSUME_STATS, a.broker_consume_stats)
        t.register(RequestCode.GET_CONSUMER_RUNNING_INFO, a.call_consumer)
        t.register(RequestCode.CONSUME_MESSAGE_DIRECTLY, a.call_consumer)
        t.register(RequestCode.GET_BROKER_HA_STATUS, a.ha_status)
        t.register(RequestCode.QUERY_CONSUME_QUEUE, a.query_consume_queue)
        t.register(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, a.reset_offset)
        t.register(RequestCode.GET_PRODUCER_CONNECTION_LIST, a.producer_connections)
        t.register(RequestCode.CLEAN_EXPIRED_CONSUMEQUEUE, a.clean_expired_consume_queue)
        t.register(RequestCode.QUERY_TOPIC_CONSUME_BY_WHO, a.topic_consumed_by)
        t.register(RequestCode.GET_TOPIC_STATS_INFO, a.topic_stats)
        t.register(RequestCode.GET_CONSUME_STATS, a.consume_stats)
        t.register(RequestCode.GET_CONSUMER_CONNECTION_LIST, a.consumer_connections)
        t.register(RequestCode.GET_BROKER_RUNTIME_INFO, a.runtime_info)
        t.register(RequestCode.DELETE_EXPIRED_COMMITLOG, self._delete_expired)
        return t

    def _delete_expired(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """DELETE_EXPIRED_COMMITLOG (mqadmin deleteExpiredCommitLog): the next retention passes delete expired
        messages whatever the hour, as Apache's manual delete."""
        self.ctx.retention.delete_manually()
        return cmd.response(ResponseCode.SUCCESS)

    async def _expire_clients(self) -> None:
        while True:
            await anyio.sleep(CLIENT_SCAN_INTERVAL_S)
            self.client_handlers.expire()

    async def drain(self, timeout: float = 5.0) -> None:
        """Stop accepting connections, answer held pulls, and let accepted sends finish (graceful shutdown)."""
        self.server.stop_accepting()
        if self.grpc_server is not None:
            self.grpc_server.stop_accepting()
        self.ctx.waits.release_all()
        # Short polls, at shutdown only: first until every accepted send is stored and answered, then briefly
        # until the released pulls' answers are written (consumers may keep pulling, so this is bounded).
        with anyio.move_on_after(timeout):
            while self.send_handler.in_flight > 0:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        with anyio.move_on_after(WRITE_GRACE_S):
            while not all(c.idle for c in self.connections.values()):  # noqa: ASYNC110
                await anyio.sleep(0.01)

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; on cancellation unregister and close the store cleanly."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.open()
        try:
            await self.topics.load()
            await self.ctx.groups.load()
            await self.ctx.transactions.load()
            for group, topic, etype, expression, version in await self.store.load_subscriptions():
                self.ctx.clients.remembered[(group, topic)] = make_subscription(topic, expression, etype, version)
            async with anyio.create_task_group() as tg:
                port = await tg.start(self.server.serve, self.config.host, self.config.port)
                self.config.port = port
                await self.registrar.register_all()
                # A failure in one of these (a bug, a full disk) restarts that job; it never stops the broker.
                tg.start_soon(supervised, "name-server registration", self.registrar.run)
                tg.start_soon(supervised, "client expiry", self._expire_clients)
                tg.start_soon(supervised, "scheduled delivery", self.ctx.scheduler.run)
                tg.start_soon(supervised, "transaction checks", self.ctx.transactions.run)
                tg.start_soon(supervised, "retention", self.ctx.retention.run)
                tg.start_soon(self._serve_grpc)
                tg.start_soon(self._serve_http)
                task_status.started(port)
        finally:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(3):
                    await self.registrar.unregister_all()
                await self.store.close()
                await anyio.to_thread.run_sync(self.hooks.close)

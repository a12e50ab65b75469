"""What every request handler of the broker shares."""

from __future__ import annotations

import functools
import ipaddress
import os
import random
import time
from dataclasses import dataclass, field

from codec.message_id import OffsetMsgIdEncoder, UniqueIdGenerator
from gateway.clients import ClientRegistry
from gateway.clock import Clock, SystemClock
from gateway.config import BrokerConfig
from gateway.delay import DelayPolicy, parse_delay_levels
from gateway.groups import SubscriptionGroups
from gateway.invariants import InvariantChecker, checker_for
from gateway.locks import QueueLockTable
from gateway.long_poll import PullWaitTable
from gateway.retention import Retention
from gateway.scheduler import DeliveryScheduler
from gateway.stats import BrokerStats
from gateway.topics import TopicTable
from gateway.transaction_checker import TransactionChecker
from gateway.transactions import CheckPolicy
from remoting.connection import Connection
from store.api import MessageStore


def now_ms() -> int:
    return int(time.time() * 1000)


@functools.lru_cache(maxsize=4096)
def ipv4_of(host: str) -> str:
    """An IPv4 text for a peer address; C++ and ali-ons decode IPv4 hosts only."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "127.0.0.1"
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return "127.0.0.1" if ip.is_loopback else str(ip)


@dataclass
class BrokerContext:
    config: BrokerConfig
    store: MessageStore
    topics: TopicTable
    clock: Clock = field(default_factory=SystemClock)
    clients: ClientRegistry = field(default_factory=ClientRegistry)
    waits: PullWaitTable = field(default_factory=PullWaitTable)
    ids: UniqueIdGenerator = field(init=False)
    locks: QueueLockTable = field(init=False)
    delays: DelayPolicy = field(init=False)
    scheduler: DeliveryScheduler = field(init=False)
    connections: dict[int, Connection] = field(default_factory=dict)  # live client connections by id
    transaction_policy: CheckPolicy = field(init=False)
    transactions: TransactionChecker = field(init=False)
    groups: SubscriptionGroups = field(init=False)
    stats: BrokerStats = field(init=False)
    retention: Retention = field(init=False)
    invariants: InvariantChecker = field(init=False)

    def __post_init__(self) -> None:
        self.groups = SubscriptionGroups(self.store)
        self.stats = BrokerStats(self.clock.now_ms)
        self.retention = Retention(self.store, self.config, self.clock)
        self.locks = QueueLockTable(self.config.rebalance_lock_max_live_ms)
        self.delays = DelayPolicy(parse_delay_levels(self.config.message_delay_level), self.config.timer_max_delay_ms)
        self.invariants = checker_for(self.clock.now_ms)
        self.scheduler = DeliveryScheduler(self.store, self.clock, self.waits.notify, self.invariants)
        cfg = self.config
        self.transaction_policy = CheckPolicy(
            cfg.transaction_timeout_ms, cfg.transaction_check_interval_ms, cfg.transaction_check_max
        )
        self.transactions = TransactionChecker(
            self.store, self.clock, self.transaction_policy, self.producer_connection
        )
        self.ids = UniqueIdGenerator(ipv4_of(self.config.advertise_host), os.getpid(), random.getrandbits(31))
        self.store_host = ipv4_of(self.config.advertise_host)
        self._msg_id_where: tuple[str, int] | None = None
        self._msg_ids = OffsetMsgIdEncoder(self.store_host, 0)

    @property
    def msg_ids(self) -> OffsetMsgIdEncoder:
        """The offset message ids of messages stored here (store host and port, physical offset)."""
        where = (self.store_host, self.config.port)  # the port is known once the listener is bound
        if where != self._msg_id_where:
            self._msg_id_where, self._msg_ids = where, OffsetMsgIdEncoder(*where)
        return self._msg_ids

    def msg_id(self, phys_offset: int) -> str:
        """The offset message id of a message stored here."""
        return self.msg_ids(phys_offset)

    def producer_connection(self, group: str) -> Connection | None:
        """A live connection of a producer of ``group`` (ProducerManager.getAvailableChannel), or None."""
        channels = [self.connections.get(conn_id) for conn_id in self.clients.producers.get(group, {})]
        live = [c for c in channels if c is not None and not c.closed.is_set()]
        return random.choice(live) if live else None

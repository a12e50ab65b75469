"""The name server's route registry: brokers, clusters, topic queues, liveness. Pure state; the clock is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codec.codes import MASTER_ID

BROKER_EXPIRY_MS = 120_000


@dataclass(slots=True)
class QueueData:
    broker_name: str
    read_queue_nums: int
    write_queue_nums: int
    perm: int
    topic_sys_flag: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "brokerName": self.broker_name,
            "perm": self.perm,
            "readQueueNums": self.read_queue_nums,
            "topicSynFlag": self.topic_sys_flag,
            "topicSysFlag": self.topic_sys_flag,
            "writeQueueNums": self.write_queue_nums,
        }


@dataclass(slots=True)
class BrokerData:
    cluster: str
    broker_name: str
    addrs: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "brokerAddrs": {str(k): v for k, v in sorted(self.addrs.items())},
            "brokerName": self.broker_name,
            "cluster": self.cluster,
            "enableActingMaster": False,
        }


@dataclass(slots=True)
class LiveBroker:
    broker_name: str
    cluster: str
    broker_id: int
    last_update_ms: int
    timeout_ms: int
    connection_id: int | None


@dataclass(slots=True)
class TopicRegistration:
    """One topic as a broker reports it in REGISTER_BROKER."""

    name: str
    read_queue_nums: int
    write_queue_nums: int
    perm: int
    topic_sys_flag: int = 0


PERM_READ, PERM_WRITE = 4, 2  # PermName


class RouteTable:
    def __init__(self) -> None:
        self.brokers: dict[str, BrokerData] = {}
        self.clusters: dict[str, set[str]] = {}
        self.topics: dict[str, dict[str, QueueData]] = {}
        self.live: dict[str, LiveBroker] = {}  # broker address -> liveness
        self.kv: dict[str, dict[str, str]] = {}
        self.write_wiped: set[str] = set()  # broker names whose queues route without write permission

    def register_broker(
        self,
        *,
        cluster: str,
        broker_name: str,
        broker_addr: str,
        broker_id: int,
        topics: list[TopicRegistration],
        now_ms: int,
        timeout_ms: int = BROKER_EXPIRY_MS,
        connection_id: int | None = None,
    ) -> None:
        """Add or refresh a broker and the queue data it reports (masters only define queues)."""
        self.clusters.setdefault(cluster, set()).add(broker_name)
        data = self.brokers.setdefault(broker_name, BrokerData(cluster, broker_name))
        data.cluster = cluster
        # One address per broker id: a restarted broker at a new address replaces the old one.
        for other_id, addr in list(data.addrs.items()):
            if addr == broker_addr and other_id != broker_id:
                del data.addrs[other_id]
        data.addrs[broker_id] = broker_addr
        self.live[broker_addr] = LiveBroker(broker_name, cluster, broker_id, now_ms, timeout_ms, connection_id)
        if broker_id != MASTER_ID:
            return
        # Add and update only: Apache brokers register a newly created topic alone (registerIncrementBrokerData),
        # and Apache's name server keeps the broker's other topics (deleteTopicWithBrokerRegistration=false).
        wiped = broker_name in self.write_wiped
        for t in topics:
            perm = t.perm & ~PERM_WRITE if wiped else t.perm
            self.topics.setdefault(t.name, {})[broker_name] = QueueData(
                broker_name, t.read_queue_nums, t.write_queue_nums, perm, t.topic_sys_flag
            )

    def unregister_broker(self, broker_addr: str) -> None:
        live = self.live.pop(broker_addr, None)
        if live is None:
            return
        data = self.brokers.get(live.broker_name)
        if data is not None:
            data.addrs = {i: a for i, a in data.addrs.items() if a != broker_addr}
            if not data.addrs:
                del self.brokers[live.broker_name]
                names = self.clusters.get(live.cluster)
                if names is not None:
                    names.discard(live.broker_name)
                    if not names:
                        del self.clusters[live.cluster]
        if live.broker_id == MASTER_ID:
            for name in [n for n, queues in self.topics.items() if live.broker_name in queues]:
                self._drop_topic_queue(name, live.broker_name)

    def set_write_perm(self, broker_name: str, writable: bool) -> int:
        """wipeWritePerm / addWritePerm (RouteInfoManager.operateWritePermOfBroker): every queue of the broker
        loses the write bit, or gets read and write; kept across its later registrations until changed back.
        Returns how many topics changed."""
        if writable:
            self.write_wiped.discard(broker_name)
        else:
            self.write_wiped.add(broker_name)
        count = 0
        for queues in self.topics.values():
            data = queues.get(broker_name)
            if data is not None:
                data.perm = PERM_READ | PERM_WRITE if writable else data.perm & ~PERM_WRITE
                count += 1
        return count

    def _drop_topic_queue(self, topic: str, broker_name: str) -> None:
        queues = self.topics.get(topic)
        if queues is not None:
            queues.pop(broker_name, None)
            if not queues:
                del self.topics[topic]

    def expire(self, now_ms: int) -> list[str]:
        """Drop brokers not heard from within their timeout; return their addresses."""
        dead = [addr for addr, b in self.live.items() if now_ms - b.last_update_ms > b.timeout_ms]
        for addr in dead:
            self.unregister_broker(addr)
        return dead

    def connection_closed(self, connection_id: int) -> list[str]:
        gone = [addr for addr, b in self.live.items() if b.connection_id == connection_id]
        for addr in gone:
            self.unregister_broker(addr)
        return gone

    def route(self, topic: str) -> dict[str, Any] | None:
        """TopicRouteData for a topic, or None when no live broker serves it."""
        queues = self.topics.get(topic)
        if not queues:
            return None
        names = sorted(queues)
        return {
            "brokerDatas": [self.brokers[n].to_json() for n in names if n in self.brokers],
            "filterServerTable": {},
            "queueDatas": [queues[n].to_json() for n in names],
        }

    def delete_topic(self, topic: str, cluster: str | None = None) -> None:
        if cluster is None:
            self.topics.pop(topic, None)
            return
        for name in self.clusters.get(cluster, ()):
            self._drop_topic_queue(topic, name)

    def cluster_info(self) -> dict[str, Any]:
        return {
            "brokerAddrTable": {n: b.to_json() for n, b in sorted(self.brokers.items())},
            "clusterAddrTable": {c: sorted(names) for c, names in sorted(self.clusters.items())},
        }

    def topic_list(self) -> list[str]:
        return sorted(self.topics)

    def topics_of_cluster(self, cluster: str) -> list[str]:
        names = self.clusters.get(cluster, set())
        return sorted(t for t, queues in self.topics.items() if names & queues.keys())

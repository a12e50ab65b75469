"""Producer and consumer registrations learned from heartbeats (ProducerManager / ConsumerManager). Pure state."""

from __future__ import annotations

from dataclasses import dataclass, field

from codec.heartbeat import ConsumerData, Subscription


@dataclass(slots=True)
class ClientChannel:
    """One client on one connection."""

    client_id: str
    connection_id: int
    address: str
    language: str
    version: int
    last_update_ms: int


@dataclass(slots=True)
class ConsumerGroup:
    name: str
    consume_type: str = "CONSUME_PASSIVELY"
    message_model: str = "CLUSTERING"
    consume_from_where: str = "CONSUME_FROM_LAST_OFFSET"
    channels: dict[int, ClientChannel] = field(default_factory=dict)  # by connection id
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    def client_ids(self) -> list[str]:
        return sorted({c.client_id for c in self.channels.values()})


class ClientRegistry:
    def __init__(self, expiry_ms: int = 120_000) -> None:
        self.expiry_ms = expiry_ms
        self.consumers: dict[str, ConsumerGroup] = {}
        self.producers: dict[str, dict[int, ClientChannel]] = {}
        # The last subscription seen per (group, topic), also from before a restart; used while the group has
        # no live member (e.g. until its first heartbeat after a broker restart).
        self.remembered: dict[tuple[str, str], Subscription] = {}

    def register_consumer(self, data: ConsumerData, channel: ClientChannel) -> bool:
        """Add or refresh a consumer; True when the group gained a member or a subscribed topic was added or
        removed (ConsumerGroupInfo.updateChannel / updateSubscription). A changed expression or a newer
        subVersion replaces the subscription without a notification, as in Apache."""
        group = self.consumers.setdefault(data.group, ConsumerGroup(data.group))
        before = (group.client_ids(), set(group.subscriptions))
        group.consume_type = data.consume_type
        group.message_model = data.message_model
        group.consume_from_where = data.consume_from_where
        group.channels[channel.connection_id] = channel
        group.subscriptions = dict(data.subscriptions)
        return before != (group.client_ids(), set(group.subscriptions))

    def register_producer(self, group: str, channel: ClientChannel) -> None:
        self.producers.setdefault(group, {})[channel.connection_id] = channel

    def unregister(self, connection_id: int, producer_group: str | None, consumer_group: str | None) -> list[str]:
        """Remove one client's registration from the named groups; return consumer groups that changed."""
        changed = []
        if producer_group and producer_group in self.producers:
            self.producers[producer_group].pop(connection_id, None)
            if not self.producers[producer_group]:
                del self.producers[producer_group]
        if consumer_group and consumer_group in self.consumers:
            group = self.consumers[consumer_group]
            if group.channels.pop(connection_id, None) is not None:
                changed.append(consumer_group)
            if not group.channels:
                del self.consumers[consumer_group]
        return changed

    def connection_closed(self, connection_id: int) -> list[str]:
        """Forget everything registered over a connection; return consumer groups that changed."""
        for group in list(self.producers):
            self.unregister(connection_id, group, None)
        changed = []
        for name in list(self.consumers):
            changed += self.unregister(connection_id, None, name)
        return changed

    def expire(self, now_ms: int) -> list[str]:
        """Drop channels idle longer than the expiry; return consumer groups that changed."""
        changed: set[str] = set()
        for name, group in list(self.consumers.items()):
            for conn_id, ch in list(group.channels.items()):
                if now_ms - ch.last_update_ms > self.expiry_ms:
                    changed.update(self.unregister(conn_id, None, name))
        for name, channels in list(self.producers.items()):
            for conn_id, ch in list(channels.items()):
                if now_ms - ch.last_update_ms > self.expiry_ms:
                    self.unregister(conn_id, name, None)
        return sorted(changed)

    def connection_of_client(self, client_id: str) -> int | None:
        """The connection a producer with this client id registered on (ProducerManager.findChannel)."""
        for channels in self.producers.values():
            for conn_id, ch in channels.items():
                if ch.client_id == client_id:
                    return conn_id
        return None

    def subscription(self, group: str, topic: str) -> Subscription | None:
        g = self.consumers.get(group)
        live = g.subscriptions.get(topic) if g else None
        return live if live is not None else self.remembered.get((group, topic))

    def to_remember(self, group: str, subscriptions: dict[str, Subscription]) -> list[Subscription]:
        """Subscriptions that differ from what is remembered for the group (they need saving); remembers them."""
        changed = []
        for topic, sub in subscriptions.items():
            old = self.remembered.get((group, topic))
            if old is None or (old.expression_type, old.expression) != (sub.expression_type, sub.expression):
                self.remembered[(group, topic)] = sub
                changed.append(sub)
        return changed

"""Prometheus metrics (``/metrics`` on the HTTP port), named and labelled as users know them from
rocketmq-exporter, plus pocketmq's own. Read from the broker's state at each scrape (a custom collector): nothing
is kept for them between scrapes.

rocketmq-exporter names: ``rocketmq_producer_tps`` / ``rocketmq_producer_offset`` (topic),
``rocketmq_consumer_tps`` / ``rocketmq_consumer_offset`` / ``rocketmq_group_diff`` (topic, group),
``rocketmq_brokeruntime_msg_put_total_today_now`` and ``..._gettotal_today_now``, ``rocketmq_broker_tps`` / ``_qps``.
pocketmq's: ``pocketmq_store_bytes``, ``pocketmq_scheduled_messages``, ``pocketmq_half_messages_pending``,
``pocketmq_connections``, ``pocketmq_grpc_clients``, ``pocketmq_store_free_bytes``,
``pocketmq_retention_deleted_messages``, ``pocketmq_invariant_violations_total{invariant}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from gateway.context import BrokerContext
from gateway.stats import GROUP_GET_NUMS, TOPIC_PUT_NUMS
from gateway.store_size import store_bytes

if TYPE_CHECKING:
    from remoting.request_hooks import RequestHooks

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class BrokerCollector:
    def __init__(
        self,
        ctx: BrokerContext,
        extra: Callable[[], dict[str, float]] | None = None,
        hooks: RequestHooks | None = None,
    ) -> None:
        self.ctx = ctx
        self.hooks = hooks
        self.extra = extra or (lambda: {})
        self.store_bytes = 0
        self.scheduled = 0
        self.free_bytes = 0

    def collect(self) -> Iterator[Metric]:
        ctx, store = self.ctx, self.ctx.store
        cluster, broker = ctx.config.cluster, ctx.config.broker_name
        now_s = ctx.clock.now_ms() // 1000
        base = ["cluster", "broker"]

        topic_labels = [*base, "topic"]
        producer_tps = GaugeMetricFamily("rocketmq_producer_tps", "Messages put per second, 1 min", labels=topic_labels)
        producer_offset = GaugeMetricFamily("rocketmq_producer_offset", "Sum of the max offsets", labels=topic_labels)
        for name, cfg in sorted(ctx.topics.topics.items()):
            counter = ctx.stats.counters[TOPIC_PUT_NUMS].get(name)
            producer_tps.add_metric([cluster, broker, name], counter.rate(60, now_s) if counter else 0.0)
            producer_offset.add_metric(
                [cluster, broker, name], sum(store.max_offset(name, q) for q in range(cfg.write_queue_nums))
            )
        yield producer_tps
        yield producer_offset

        labels = [*base, "topic", "group"]
        consumer_tps = GaugeMetricFamily("rocketmq_consumer_tps", "Messages got per second (1 min)", labels=labels)
        consumer_offset = GaugeMetricFamily("rocketmq_consumer_offset", "Sum of the committed offsets", labels=labels)
        group_diff = GaugeMetricFamily("rocketmq_group_diff", "Messages not yet consumed by the group", labels=labels)
        for group in store.consumer_groups():
            per_topic: dict[str, list[int]] = {}
            for (topic, queue_id), offset in store.consumer_offsets(group).items():
                lag = max(store.max_offset(topic, queue_id) - offset, 0)
                totals = per_topic.setdefault(topic, [0, 0])
                totals[0] += offset
                totals[1] += lag
            for topic, (offset_sum, lag_sum) in sorted(per_topic.items()):
                counter = ctx.stats.counters[GROUP_GET_NUMS].get(f"{topic}@{group}")
                consumer_tps.add_metric([cluster, broker, topic, group], counter.rate(60, now_s) if counter else 0.0)
                consumer_offset.add_metric([cluster, broker, topic, group], offset_sum)
                group_diff.add_metric([cluster, broker, topic, group], lag_sum)
        yield consumer_tps
        yield consumer_offset
        yield group_diff

        totals = ctx.stats.day_totals()
        for key, name in (
            ("msgPutTotalTodayNow", "rocketmq_brokeruntime_msg_put_total_today_now"),
            ("msgGetTotalTodayNow", "rocketmq_brokeruntime_msg_gettotal_today_now"),
        ):
            family = GaugeMetricFamily(name, f"{key} (brokerStatus)", labels=base)
            family.add_metric([cluster, broker], totals[key])
            yield family
        for name, kind, text in (
            ("rocketmq_broker_tps", "put", "Messages put per second (10 s)"),
            ("rocketmq_broker_qps", "get", "Messages got per second (10 s)"),
        ):
            family = GaugeMetricFamily(name, text, labels=base)
            family.add_metric([cluster, broker], float(ctx.stats.tps_text(kind).split()[0]))
            yield family

        own = {
            "pocketmq_store_bytes": ("Size of the store's files (database and WAL)", self.store_bytes),
            "pocketmq_scheduled_messages": ("Delayed and timed messages waiting for their time", self.scheduled),
            "pocketmq_half_messages_pending": (
                "Half messages neither committed nor rolled back",
                len(ctx.transactions.pending),
            ),
            "pocketmq_connections": ("Open remoting connections", len(ctx.connections)),
            "pocketmq_store_free_bytes": ("Free pages inside the store that new messages reuse", self.free_bytes),
            "pocketmq_retention_deleted_messages": (
                "Messages deleted by retention since start",
                ctx.retention.deleted_messages,
            ),
        }
        for name, (text, value) in {**own, **{k: ("", v) for k, v in self.extra().items()}}.items():
            family = GaugeMetricFamily(name, text or name, labels=base)
            family.add_metric([cluster, broker], value)
            yield family
        violations = CounterMetricFamily(
            "pocketmq_invariant_violations",
            "Delivery invariants found broken (docs/testing.md)",
            labels=[*base, "invariant"],
        )
        for invariant, count in sorted(ctx.invariants.counts.items()):
            violations.add_metric([cluster, broker, invariant], count)
        yield violations
        if self.hooks is not None:
            yield from hook_metrics(self.hooks, cluster, broker)


def hook_metrics(hooks: RequestHooks, cluster: str, broker: str) -> Iterator[Metric]:
    """Faults injected per rule and action; trace lines written and dropped (docs/testing.md)."""
    injected = CounterMetricFamily(
        "pocketmq_faults_injected", "Faults injected by fault rules", labels=["cluster", "broker", "rule", "action"]
    )
    for (rule, action), count in sorted(hooks.faults.injected_counts().items()):
        injected.add_metric([cluster, broker, str(rule), action], count)
    yield injected
    trace = hooks.trace
    written, dropped = (trace.written, trace.dropped) if trace is not None else (0, 0)
    for name, text, value in (
        ("pocketmq_trace_lines", "Protocol trace lines written to the current trace file", written),
        ("pocketmq_trace_dropped", "Protocol trace lines dropped: the disk did not keep up", dropped),
    ):
        family = CounterMetricFamily(name, text, labels=["cluster", "broker"])
        family.add_metric([cluster, broker], value)
        yield family


async def render(collector: BrokerCollector) -> bytes:
    """The exposition text; the few values that need the store asked first (off the collector's sync path)."""
    ctx = collector.ctx
    collector.scheduled = await ctx.store.scheduled_count()
    collector.store_bytes = store_bytes(ctx.config.data_dir)
    collector.free_bytes = ctx.store.space()[1]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry)

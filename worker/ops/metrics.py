"""Prometheus metrics: counted where the work happens, served by `quota-worker run`.

Celery's pool processes count messages, refusals and refunds; the supervisor
publishes events and reads the backlog from the database at scrape time.
All of them share prometheus-client's multiprocess directory, which the
supervisor creates before it starts the worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from domain.events import ChangeRejected, DomainEvent, QuotaChanged, RefundRequired
from domain.payment import Payment

MESSAGES = Counter(
    "quota_messages_total", "Inbound messages handled, by task and outcome", ["task", "outcome"]
)
REJECTIONS = Counter("quota_rejections_total", "Change requests refused, by reason", ["reason"])
REFUNDS = Counter("quota_refunds_total", "Refunds required, by reason", ["reason"])
CHANGES_APPLIED = Counter("quota_changes_applied_total", "Address-limit changes applied")
PAYMENT_TO_APPLIED = Histogram(
    "quota_payment_to_applied_seconds",
    "From the payment's paid_at to the new limit in force",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
COMMIT_TO_EVENT = Histogram(
    "quota_commit_to_event_seconds",
    "From the commit that wrote an event to its publication on the stream",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30),
)
BATCH_SIZE = Histogram(
    "quota_batch_size",
    "Messages handled in one transaction (QUOTA_BATCH_MAX; 1 when batching is off)",
    buckets=(1, 2, 5, 10, 20, 50, 100),
)
EVENTS_PUBLISHED = Counter("quota_events_published_total", "Events published to the stream")
RELAY_ERRORS = Counter("quota_relay_errors_total", "Relay passes that failed (and were retried)")


def count_committed(events: Iterable[DomainEvent], used: Iterable[Payment], now: datetime) -> None:
    for payment in used:
        PAYMENT_TO_APPLIED.observe(max(0.0, (now - payment.paid_at).total_seconds()))
    for event in events:
        if isinstance(event, ChangeRejected):
            REJECTIONS.labels(event.reason).inc()
        elif isinstance(event, RefundRequired):
            REFUNDS.labels(event.reason).inc()
        elif isinstance(event, QuotaChanged):
            CHANGES_APPLIED.inc()


class BacklogCollector(Collector):
    """Gauges read at scrape time: queues, changes by state, outbox lag, dead letters."""

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot  # () -> worker.ops.queries.Status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.snapshot()
        depth = GaugeMetricFamily(
            "quota_queue_depth", "Messages waiting per queue", labels=["queue"]
        )
        for queue, n in status.queues.items():
            if n is not None:
                depth.add_metric([queue], n)
        yield depth
        states = GaugeMetricFamily("quota_changes", "Change requests by state", labels=["state"])
        for state, n in status.changes.items():
            states.add_metric([state], n)
        yield states
        yield GaugeMetricFamily(
            "quota_outbox_backlog", "Events not yet published", value=status.outbox_backlog
        )
        yield GaugeMetricFamily(
            "quota_outbox_lag_seconds",
            "Age of the oldest unpublished event",
            value=status.oldest_unsent_seconds or 0.0,
        )
        yield GaugeMetricFamily(
            "quota_oldest_awaiting_payment_seconds",
            "Age of the oldest change awaiting payment",
            value=status.oldest_awaiting_seconds or 0.0,
        )
        letters = GaugeMetricFamily(
            "quota_dead_letters", "Dead letters waiting for an operator", labels=["task"]
        )
        by_task: dict[str, int] = {}
        for row in status.dead_letters:
            by_task[str(row["task"])] = by_task.get(str(row["task"]), 0) + row["count"]
        for task, n in by_task.items():
            letters.add_metric([task], n)
        yield letters
        yield GaugeMetricFamily(
            "quota_payments_held", "Payments waiting for their order", value=status.payments_held
        )
        yield GaugeMetricFamily(
            "quota_over_limit", "Service Mails with more addresses than their limit",
            value=status.over_limit,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "quota_stream_length", "Entries in the event stream", value=status.stream_length
        )
        yield GaugeMetricFamily(
            "quota_redis_used_memory_bytes", "Memory used by the stream's Redis",
            value=status.redis_used_memory_bytes,
        )  # fmt: skip
        yield from _group_gauges(status.consumer_groups)
        yield GaugeMetricFamily(
            "quota_healthy", "1 when status finds no problem", value=float(status.healthy)
        )


def _group_gauges(groups: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    lag = GaugeMetricFamily(
        "quota_stream_group_lag", "Entries a consumer group has not yet acknowledged",
        labels=["group"],
    )  # fmt: skip
    age = GaugeMetricFamily(
        "quota_stream_group_oldest_unread_seconds",
        "Age of the oldest entry a consumer group has not acknowledged", labels=["group"],
    )  # fmt: skip
    for g in groups:
        if g["lag"] is not None:
            lag.add_metric([g["name"]], g["lag"])
        age.add_metric([g["name"]], g["oldest_unread_seconds"] or 0.0)
    yield lag
    yield age


class MetricsNotShared(RuntimeError):
    pass


def serve(port: int, snapshot: Any) -> CollectorRegistry:
    """Serve every process's counters and the backlog gauges on `port`."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        raise MetricsNotShared(
            "PROMETHEUS_MULTIPROC_DIR is unset: start the worker with `quota-worker run`, "
            "which sets it before the worker processes start"
        )
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(BacklogCollector(snapshot))
    start_http_server(port, registry=registry)
    return registry

"""The Prometheus endpoint of `quota-worker run`: counts from every process, parsed."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import WorkerProcess
from tests.e2e.producer import Producer
from tests.helpers import EventReader, new_id, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def metrics_port(worker: WorkerProcess) -> int:
    assert worker.metrics_port is not None
    return worker.metrics_port


def scrape(port: int) -> dict[str, list[Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _total(samples: list[Any], **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_the_endpoint_parses_and_carries_the_backlog_gauges(metrics_port: int) -> None:
    families = scrape(metrics_port)
    for name in (
        "quota_queue_depth", "quota_changes", "quota_outbox_backlog", "quota_outbox_lag_seconds",
        "quota_dead_letters", "quota_payments_held",
    ):  # fmt: skip
        assert name in families, name


def _counts(port: int) -> tuple[float, float, float]:
    families = scrape(port)
    return (
        _total(families.get("quota_messages", []), task="quota.request_change"),
        _total(families.get("quota_rejections", []), reason="not_owner"),
        _total(families.get("quota_refunds", []), reason="change_rejected"),
    )


def _published(port: int) -> tuple[float, float]:
    families = scrape(port)
    count = [s for s in families["quota_commit_to_event_seconds"] if s.name.endswith("_count")]
    return _total(families["quota_events_published"]), count[0].value if count else 0.0


def test_messages_refusals_and_refunds_are_counted_across_processes(
    metrics_port: int, customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    """Compared before and after: the worker is shared by the suite, so its counters hold
    what earlier tests sent too."""
    customer = customer_factory()
    before = _counts(metrics_port)
    order = customer.order(expected=10, new=20, account=new_id("intruder"))
    events.wait_for("mail.quota.change.rejected", order_id=order["order_id"])
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    events.wait_for("mail.quota.refund.required", payment_id=payment_id)

    def counted() -> bool:
        return all(b >= a + 1 for a, b in zip(before, _counts(metrics_port), strict=True))

    assert wait_until(counted, 30), (before, _counts(metrics_port))


def test_published_events_and_their_commit_to_stream_latency_are_measured(
    metrics_port: int, customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory()
    before = _published(metrics_port)
    order = customer.order(expected=10, new=20)
    events.wait_for("mail.quota.change.accepted", order_id=order["order_id"])

    def measured() -> bool:
        return all(b >= a + 1 for a, b in zip(before, _published(metrics_port), strict=True))

    assert wait_until(measured, 30), (before, _published(metrics_port))

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


# The counters a test reads, by family and label values (messages: task and outcome).
_LABELS = {"quota_messages": ("task", "outcome"), "quota_rejections": ("reason",),
           "quota_refunds": ("reason",)}  # fmt: skip


def _idle(port: int) -> bool:
    """Nothing queued, unpublished, awaiting payment or held: no message or deadline left by
    an earlier test can still move a counter while this one measures."""
    families = scrape(port)
    pending = [s.value for s in families["quota_queue_depth"]]
    pending += [
        s.value for s in families["quota_changes"] if s.labels["state"] == "awaiting_payment"
    ]
    pending += [families[name][0].value for name in ("quota_outbox_backlog", "quota_payments_held")]
    return not any(pending)


def _counters(port: int) -> dict[tuple[str, ...], float]:
    families = scrape(port)
    return {
        (name, *(s.labels[k] for k in keys)): s.value
        for name, keys in _LABELS.items()
        for s in families.get(name, [])
        if s.name.endswith("_total")
    }


def _moved(before: dict[tuple[str, ...], float], port: int) -> dict[tuple[str, ...], float]:
    """What each counter gained since `before`, the unmoved left out (the worker is shared
    by the suite: its counters also hold what earlier tests sent)."""
    after = _counters(port)
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_messages_refusals_and_refunds_are_counted_across_processes(
    metrics_port: int, customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    """A refused request and its refunded payment add exactly one to their task and outcome,
    to `not_owner` and to `change_rejected`, and nothing to any other label."""
    customer = customer_factory()
    assert wait_until(lambda: _idle(metrics_port), 60), scrape(metrics_port)
    before = _counters(metrics_port)
    order = customer.order(expected=10, new=20, account=new_id("intruder"))
    events.wait_for("mail.quota.change.rejected", order_id=order["order_id"])
    payment_id = new_id("pay")
    producer.pay(payment_id=payment_id, order_id=order["order_id"])
    events.wait_for("mail.quota.refund.required", payment_id=payment_id)
    sent = {
        ("quota_messages", "quota.request_change", "rejected"): 1.0,
        ("quota_messages", "quota.payment_confirmed", "refund"): 1.0,
        ("quota_rejections", "not_owner"): 1.0,
        ("quota_refunds", "change_rejected"): 1.0,
    }
    tasks = {"quota.request_change", "quota.payment_confirmed"}

    def ours() -> dict[tuple[str, ...], float]:
        # Every outcome of the two tasks sent and every reason; the provisioning message is
        # counted just after its row is seen, so it may land after `before`.
        moved = _moved(before, metrics_port)
        return {k: v for k, v in moved.items() if k[0] != "quota_messages" or k[1] in tasks}

    wait_until(lambda: all(ours().get(k, 0.0) >= n for k, n in sent.items()), 30)
    assert ours() == sent


def _published(port: int) -> tuple[float, float]:
    families = scrape(port)
    count = [s for s in families["quota_commit_to_event_seconds"] if s.name.endswith("_count")]
    return _total(families["quota_events_published"]), count[0].value if count else 0.0


def test_published_events_and_their_commit_to_stream_latency_are_measured(
    metrics_port: int, customer_factory: Any, producer: Producer, events: EventReader
) -> None:
    """A paid order's two events (accepted, changed) add exactly two to the published count
    and two observations to the commit-to-stream latency."""
    customer = customer_factory()
    assert wait_until(lambda: _idle(metrics_port), 60), scrape(metrics_port)
    before = _published(metrics_port)
    order = customer.order(expected=10, new=20)
    producer.pay(payment_id=new_id("pay"), order_id=order["order_id"])
    events.wait_for("mail.quota.changed", order_id=order["order_id"])

    def moved() -> tuple[float, ...]:
        return tuple(b - a for a, b in zip(before, _published(metrics_port), strict=True))

    wait_until(lambda: min(moved()) >= 2, 30)
    assert moved() == (2.0, 2.0)

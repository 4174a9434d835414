"""The Grafana dashboard only plots metrics the worker really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import Counter, Histogram

from worker.ops import metrics
from worker.ops.queries import Status

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/quota-worker.json"


def exposed_names() -> set[str]:
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names.add(value._name + "_total")
        elif isinstance(value, Histogram):
            names |= {value._name + suffix for suffix in ("_bucket", "_sum", "_count")}
    status = Status({"quota.orders": 0}, 0, {}, {"applied": 1}, None, 0, None, [], 0, 0)
    names |= {family.name for family in metrics.BacklogCollector(lambda: status).collect()}
    return names


def test_every_dashboard_expression_uses_an_exposed_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bquota_[a-z_]+", target["expr"])
    }
    assert used and used <= exposed_names(), used - exposed_names()


def test_the_dashboard_shows_queue_depth_and_latency() -> None:
    exprs = " ".join(
        t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]
    )
    assert "quota_queue_depth" in exprs and "quota_commit_to_event_seconds_bucket" in exprs

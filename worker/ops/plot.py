"""`quota-worker status --plot`: queue depth, throughput and event latency over the last hour.

Queue depths come from the samples `quota-worker run` records every
SAMPLE_SECONDS; latency and throughput from what the database already holds
(when each event was committed and published, when each message was handled).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from statistics import quantiles
from typing import Any

from sqlalchemy import Row, delete, insert, select

from domain.model import ChangeState
from worker.adapters import tables as t
from worker.bootstrap import Container, utcnow
from worker.ops.queries import Status

# A matplotlib Axes: its stubs refuse the datetimes it plots on the x axis, so Any.
Axes = Any
Sample = Row[Any, Any, Any]  # at, name, value
Published = Row[Any, Any]  # created_at, sent_at

SAMPLE_SECONDS = 15
KEEP = timedelta(hours=24)


def record(container: Container, status: Status, now: datetime | None = None) -> None:
    now = now or utcnow()
    values = {f"queue:{q}": float(n) for q, n in status.queues.items() if n is not None}
    if status.outbox_backlog is not None:
        values["outbox_backlog"] = float(status.outbox_backlog)
    values["awaiting_payment"] = float(status.changes.get(ChangeState.AWAITING_PAYMENT, 0))
    with container.database.engine.begin() as conn:
        conn.execute(
            insert(t.samples), [{"at": now, "name": k, "value": v} for k, v in values.items()]
        )
        conn.execute(delete(t.samples).where(t.samples.c.at < now - KEEP))


def per_minute_percentiles(
    points: Iterable[tuple[datetime, float]],
) -> list[tuple[datetime, float, float]]:
    """(minute, p50, p99) of the values falling in each minute."""
    buckets: dict[datetime, list[float]] = defaultdict(list)
    for at, value in points:
        buckets[at.replace(second=0, microsecond=0)].append(value)
    out = []
    for minute in sorted(buckets):
        values = sorted(buckets[minute])
        if len(values) == 1:
            out.append((minute, values[0], values[0]))
        else:
            cuts = quantiles(values, n=100, method="inclusive")
            out.append((minute, cuts[49], cuts[98]))
    return out


def per_minute_counts(times: Iterable[datetime]) -> list[tuple[datetime, int]]:
    counts: dict[datetime, int] = defaultdict(int)
    for at in times:
        counts[at.replace(second=0, microsecond=0)] += 1
    return sorted(counts.items())


def render(container: Container, target: Path, hours: float = 1.0) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt

    since = utcnow() - timedelta(hours=hours)
    samples, published, handled = _read_window(container, since)
    figure, (depth, rate, latency) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    figure.suptitle(f"quota-worker, the last {hours:g} h (UTC)")
    _plot_depth(depth, samples)
    _plot_rate(rate, handled)
    _plot_latency(latency, published)
    latency.set_xlim(since, utcnow())  # always the whole window, even when it is quiet
    figure.autofmt_xdate()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target


def _read_window(
    container: Container, since: datetime
) -> tuple[Sequence[Sample], Sequence[Published], Sequence[datetime]]:
    """The samples, the published events and the handled messages since `since`."""
    with container.database.engine.connect() as conn:
        samples = conn.execute(
            select(t.samples.c.at, t.samples.c.name, t.samples.c.value)
            .where(t.samples.c.at >= since)
            .order_by(t.samples.c.at)
        ).all()
        published = conn.execute(
            select(t.outbox.c.created_at, t.outbox.c.sent_at).where(
                t.outbox.c.created_at >= since, t.outbox.c.sent_at.is_not(None)
            )
        ).all()
        handled = (
            conn.execute(
                select(t.processed_messages.c.processed_at).where(
                    t.processed_messages.c.processed_at >= since
                )
            )
            .scalars()
            .all()
        )
    return samples, published, handled


def _plot_depth(depth: Axes, samples: Sequence[Sample]) -> None:
    """Queue depths and the outbox backlog, one line per sampled name."""
    series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for at, name, value in samples:
        series[name].append((at, value))
    for name, points in sorted(series.items()):
        if name.startswith("queue:") or name == "outbox_backlog":
            depth.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                ".-",
                label=name.removeprefix("queue:"),
            )
    depth.set_ylabel("waiting")
    depth.set_title("queue depth and unpublished events" + ("" if series else " (no samples yet)"))
    if series:
        depth.legend(loc="upper left", fontsize="small")


def _plot_rate(rate: Axes, handled: Sequence[datetime]) -> None:
    counts = per_minute_counts(handled)
    rate.bar([c[0] for c in counts], [c[1] for c in counts], width=1 / 1440, align="edge")
    rate.set_ylabel("messages / min")
    rate.set_title("messages handled")


def _plot_latency(latency: Axes, published: Sequence[Published]) -> None:
    """Commit → stream latency of the published events: p50 and p99 per minute, in ms."""
    lat = per_minute_percentiles(
        (row.sent_at, (row.sent_at - row.created_at).total_seconds() * 1000) for row in published
    )
    latency.plot([p[0] for p in lat], [p[1] for p in lat], ".-", label="p50")
    latency.plot([p[0] for p in lat], [p[2] for p in lat], ".-", label="p99")
    latency.set_ylabel("ms")
    latency.set_title("commit → event on the stream")
    if lat:
        latency.legend(loc="upper left", fontsize="small")

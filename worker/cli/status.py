"""`quota-worker status` and `health`: is the service well, and if not, why."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from worker.cli.base import build_app, build_container, check_dependencies, load_settings, main
from worker.cli.output import cell, console, echo_json
from worker.ops import queries
from worker.ops.safe_text import printable


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")
@click.option("--watch", type=float, default=None, metavar="SECONDS", help="Refresh every SECONDS.")
@click.option("--max-queue-depth", default=1000, show_default=True, help="Unhealthy above this.")
@click.option("--max-event-lag", default=60.0, show_default=True, help="Seconds an event may wait.")
@click.option("--max-dead-letters", default=0, show_default=True, help="Unhealthy above this.")
@click.option("--no-worker-ok", is_flag=True, help="Do not count a missing worker as unhealthy.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.png",
    help="Also write a PNG of queue depth, throughput and event latency over the last hour.",
)
def status(
    as_json: bool,
    watch: float | None,
    max_queue_depth: int,
    max_event_lag: float,
    max_dead_letters: int,
    no_worker_ok: bool,
    plot: Path | None,
) -> None:
    """Queues, workers, changes by state, oldest waits, event backlog, consumer groups
    and their lag, Service Mails over their limit, dead letters.

    Exits 0 when healthy, 1 with the reasons when a threshold is crossed or Redis, the
    broker or the database cannot be reached (it still answers, with the reason).
    """
    container, app = build_container(), build_app()
    if plot is not None:
        from worker.ops.plot import render

        click.echo(f"wrote {render(container, plot)}", err=True)
    limits = queries.Thresholds(max_queue_depth, max_event_lag, max_dead_letters, not no_worker_ok)
    while True:
        snap = queries.snapshot(container, app, limits)
        if as_json:
            echo_json(snap.as_dict())
        else:
            if watch:
                console.clear()
            _print_status(snap)
        if not watch:
            sys.exit(0 if snap.healthy else 1)
        time.sleep(watch)


def _print_status(snap: queries.Status) -> None:
    tables = (_queues_table, _workers_table, _changes_table, _events_table, _groups_table)
    for table in (*tables, _letters_table):
        console.print(table(snap))
    if snap.healthy:
        console.print("[green]healthy[/green]")
    for problem in snap.problems:
        console.print(Text.assemble(("unhealthy:", "red"), " ", printable(problem)))


def _queues_table(snap: queries.Status) -> Table:
    queues = Table(title="queues", title_justify="left")
    queues.add_column("queue")
    queues.add_column("waiting", justify="right")
    for name, depth in snap.queues.items():
        queues.add_row(cell(name), "—" if depth is None else str(depth))
    if snap.unacked is not None:
        queues.add_row("(in flight, unacked)", str(snap.unacked))
    return queues


def _workers_table(snap: queries.Status) -> Table:
    workers = Table(title="workers", title_justify="left")
    workers.add_column("node")
    workers.add_column("concurrency", justify="right")
    workers.add_column("batch max", justify="right")
    workers.add_column("recent batches: mean / max size", justify="right")
    for node, size in snap.workers.items():
        workers.add_row(cell(node), str(size), *_batches(snap.batches.get(node)))
    if not snap.workers:
        workers.add_row("[red]none answered[/red]", "", "", "")
    return workers


def _batches(stats: Any) -> tuple[str | Text, str | Text]:
    if not isinstance(stats, dict):
        return "?", ""  # a worker of a version that does not tell
    most = stats.get("batch_max", 1)
    if most == 1:
        return "1", "(one per transaction)"
    mean, largest = stats.get("recent_mean"), stats.get("recent_max")
    return cell(str(most)), "none yet" if mean is None else cell(f"{mean} / {largest}")


def _changes_table(snap: queries.Status) -> Table:
    changes = Table(title="change requests", title_justify="left")
    changes.add_column("state")
    changes.add_column("count", justify="right")
    for state, count in snap.changes.items():
        changes.add_row(cell(state), str(count))
    changes.add_row("oldest awaiting payment", _age(snap.oldest_awaiting_seconds))
    changes.add_row("payments held (no order yet)", _count(snap.payments_held))
    changes.add_row("Service Mails outside their plan", _count(snap.outside_plan))
    return changes


def _events_table(snap: queries.Status) -> Table:
    events = Table(title="event stream", title_justify="left")
    events.add_column("")
    events.add_column("", justify="right")
    events.add_row("events not yet published", _count(snap.outbox_backlog))
    events.add_row("oldest unpublished event", _age(snap.oldest_unsent_seconds))
    events.add_row("refund events not yet published", _count(snap.refunds_unpublished))
    events.add_row("Service Mails over their limit (A > B)", _count(snap.over_limit))
    events.add_row("entries in the stream", _count(snap.stream_length))
    events.add_row("memory used by its Redis (bytes)", _count(snap.redis_used_memory_bytes))
    return events


def _groups_table(snap: queries.Status) -> Table:
    groups = Table(title="consumer groups of the event stream", title_justify="left")
    for column in ("group", "consumers", "pending", "lag", "oldest unread"):
        groups.add_column(column, justify="left" if column == "group" else "right")
    for g in snap.consumer_groups:
        groups.add_row(
            cell(g["name"]), str(g["consumers"]), str(g["pending"]), _count(g["lag"]),
            _age(g["oldest_unread_seconds"]),
        )  # fmt: skip
    if not snap.consumer_groups:
        groups.add_row("(none)", "", "", "", "")
    return groups


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def _letters_table(snap: queries.Status) -> Table:
    letters = Table(title="dead letters (stored)", title_justify="left")
    letters.add_column("task")
    letters.add_column("error")
    letters.add_column("count", justify="right")
    for row in snap.dead_letters:
        letters.add_row(cell(row["task"]), cell(row["error"]), str(row["count"]))
    if snap.payment_id_conflicts:
        letters.add_row(
            "(payment ids reused)", "idempotency_conflict", str(snap.payment_id_conflicts)
        )
    return letters


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return str(timedelta(seconds=int(seconds)))


@main.command()
@click.option("--live", is_flag=True, help="Also require a worker of this host to answer a ping.")
def health(live: bool) -> None:
    """Readiness (database migrated, Redis and broker reachable); --live adds a worker ping.

    For container healthchecks: exits 0 when healthy, 1 with the reason otherwise.
    """
    import socket

    settings = load_settings()
    try:
        check_dependencies(settings, wait_seconds=0)
        depths, _ = queries.queue_depths(build_app())
    except Exception as exc:  # any failure to reach a dependency is "not ready"
        click.echo(f"unhealthy: {exc}", err=True)
        sys.exit(1)
    if live:
        host = socket.gethostname()
        pools, _ = queries.workers(build_app())
        local = [node for node in pools if node.endswith("@" + host)]
        if not local:
            click.echo(f"unhealthy: no worker on {host} answered a ping", err=True)
            sys.exit(1)
    click.echo(f"healthy (queues: {depths})")

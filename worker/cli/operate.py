"""Operator commands: status, health, change requests, dead letters, manual expire/cancel."""

from __future__ import annotations

import getpass
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from domain import commands
from domain.model import ChangeState
from worker.cli.base import build_app, build_container, check_dependencies, load_settings, main
from worker.ops import change_requests, queries
from worker.ops import dead_letters as letters
from worker.ops.safe_text import printable

# Piped into a file or grep, rows must not be cut at rich's default 80 columns.
# Stored data reaches rich only as Text (never parsed as markup); emoji codes
# such as :smile: are never expanded either.
console = Console(emoji=False) if sys.stdout.isatty() else Console(width=200, emoji=False)


def _cell(value: object) -> Text:
    """A value from stored data (or the broker) as rich shows it: escaped, never markup."""
    return Text(printable(value))


def _json(data: Any) -> None:
    # ensure_ascii: every control character (and all non-ASCII) is a \uXXXX escape.
    click.echo(json.dumps(data, default=_default, indent=2, ensure_ascii=True))


def _default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return str(timedelta(seconds=int(seconds)))


def _duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError) as exc:
        raise click.BadParameter(f"{text!r}: use a number with s, m, h or d, e.g. 30m") from exc


# -- status ------------------------------------------------------------------
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
    """Queues, workers, changes by state, oldest waits, event backlog, dead letters.

    Exits 0 when healthy, 1 with the reasons when a threshold is crossed.
    """
    container, app = build_container(), build_app()
    if plot is not None:
        from worker.ops.plot import render

        click.echo(f"wrote {render(container, plot)}", err=True)
    limits = queries.Thresholds(max_queue_depth, max_event_lag, max_dead_letters, not no_worker_ok)
    while True:
        snap = queries.snapshot(container, app, limits)
        if as_json:
            _json(snap.as_dict())
        else:
            if watch:
                console.clear()
            _print_status(snap)
        if not watch:
            sys.exit(0 if snap.healthy else 1)
        time.sleep(watch)


def _print_status(snap: queries.Status) -> None:
    queues = Table(title="queues", title_justify="left")
    queues.add_column("queue")
    queues.add_column("waiting", justify="right")
    for name, depth in snap.queues.items():
        queues.add_row(_cell(name), "—" if depth is None else str(depth))
    if snap.unacked is not None:
        queues.add_row("(in flight, unacked)", str(snap.unacked))
    console.print(queues)

    workers = Table(title="workers", title_justify="left")
    workers.add_column("node")
    workers.add_column("concurrency", justify="right")
    for node, size in snap.workers.items():
        workers.add_row(_cell(node), str(size))
    if not snap.workers:
        workers.add_row("[red]none answered[/red]", "")
    console.print(workers)

    changes = Table(title="change requests", title_justify="left")
    changes.add_column("state")
    changes.add_column("count", justify="right")
    for state, count in snap.changes.items():
        changes.add_row(_cell(state), str(count))
    changes.add_row("oldest awaiting payment", _age(snap.oldest_awaiting_seconds))
    changes.add_row("payments held (no order yet)", str(snap.payments_held))
    console.print(changes)

    events = Table(title="event stream", title_justify="left")
    events.add_column("")
    events.add_column("", justify="right")
    events.add_row("events not yet published", str(snap.outbox_backlog))
    events.add_row("oldest unpublished event", _age(snap.oldest_unsent_seconds))
    events.add_row("refund events not yet published", str(snap.refunds_unpublished))
    console.print(events)

    letters = Table(title="dead letters (stored)", title_justify="left")
    letters.add_column("task")
    letters.add_column("error")
    letters.add_column("count", justify="right")
    for row in snap.dead_letters:
        letters.add_row(_cell(row["task"]), _cell(row["error"]), str(row["count"]))
    console.print(letters)
    if snap.healthy:
        console.print("[green]healthy[/green]")
    for problem in snap.problems:
        console.print(Text.assemble(("unhealthy:", "red"), " ", printable(problem)))


# -- health -------------------------------------------------------------------
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
        local = [node for node in queries.workers(build_app()) if node.endswith("@" + host)]
        if not local:
            click.echo(f"unhealthy: no worker on {host} answered a ping", err=True)
            sys.exit(1)
    click.echo(f"healthy (queues: {depths})")


# -- requests -------------------------------------------------------------------
@main.group()
def requests() -> None:
    """Find change requests and read their whole trail."""


@requests.command("list")
@click.option(
    "--state", type=click.Choice([s.value for s in ChangeState if s is not ChangeState.RECEIVED])
)
@click.option("--service-mail", help="Only this Service Mail.")
@click.option("--account", help="Only this account.")
@click.option("--older-than", help="Only changes created before this age, e.g. 2h, 30m, 1d.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def requests_list(
    state: str | None,
    service_mail: str | None,
    account: str | None,
    older_than: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List change requests, newest first."""
    rows = change_requests.list_requests(
        build_container(),
        state=state,
        service_mail=service_mail,
        account=account,
        older_than=_duration(older_than) if older_than else None,
        limit=limit,
    )
    if as_json:
        _json(rows)
        return
    table = Table()
    for column in ("request", "order", "Service Mail", "change", "state", "expires / reason"):
        table.add_column(column)
    for r in rows:
        note = r["reason"] or (
            r["expires_at"].isoformat(timespec="seconds") if r["expires_at"] else ""
        )
        table.add_row(
            _cell(r["request_id"]),
            _cell(r["order_id"]),
            _cell(r["service_mail_id"]),
            _cell(f"{r['expected_address_limit']} → {r['new_address_limit']}"),
            _cell(r["state"]),
            _cell(note),
        )
    console.print(table)


@requests.command("show")
@click.argument("request_or_order_id")
@click.option("--json", "as_json", is_flag=True)
def requests_show(request_or_order_id: str, as_json: bool) -> None:
    """Every message, transition, payment and event of one change (REQUEST_ID or ORDER_ID)."""
    trail = change_requests.request_trail(build_container(), request_or_order_id)
    if trail is None:
        raise click.ClickException(f"no change request or message for {request_or_order_id!r}")
    if as_json:
        _json(trail)
        return
    change = trail["change"]
    # Every stored value is escaped (p) and reaches rich as plain Text, never as markup.
    p = printable
    if change:
        console.print(
            Text.assemble(
                (p(change["request_id"]), "bold"),
                f" order {p(change['order_id'])} · "
                f"Service Mail {p(change['service_mail_id'])} · "
                f"account {p(change['account_id'])}\n"
                f"{p(change['expected_address_limit'])} → {p(change['new_address_limit'])} "
                f"addresses, {p(change['amount_due'])} {p(change['currency'])} due · state ",
                (p(change["state"]), "bold"),
                f" ({p(change['reason'])}: {p(change['detail'])})" if change["reason"] else "",
            )
        )
    else:
        console.print(
            Text(f"no change request for order {p(request_or_order_id)} (yet); its messages:")
        )
    timeline = Table(title="trail", title_justify="left")
    for column in ("time", "what", "detail"):
        timeline.add_column(column)
    entries: list[tuple[datetime, str, str]] = []
    for m in trail["messages"]:
        entries.append(
            (m["processed_at"], f"message {p(m['task'])}",
             f"{p(m['message_id'])} → {p(m['outcome'])}")
        )  # fmt: skip
    for tr in trail["transitions"]:
        detail = f"by {p(tr['message_id'])}" if tr["message_id"] else ""
        if tr["reason"]:
            detail = f"{p(tr['reason'])} {detail}".strip()
        entries.append((tr["at"], f"{p(tr['from_state'])} → {p(tr['to_state'])}", detail))
    for pay in trail["payments"]:
        entries.append(
            (pay["received_at"], f"payment {p(pay['payment_id'])}",
             f"{p(pay['amount'])} {p(pay['currency'])} · {p(pay['status'])}"
             + (f" ({p(pay['refund_reason'])})" if pay["refund_reason"] else ""))
        )  # fmt: skip
    for e in trail["events"]:
        published = (
            e["published_at"].isoformat(timespec="seconds") if e["published_at"] else "NOT YET"
        )
        entries.append(
            (e["created_at"], f"event {p(e['type'])}", f"{p(e['id'])} · published {published}")
        )
    for when, what, detail in sorted(entries, key=lambda x: x[0]):
        # what and detail are escaped above: Text keeps them from being read as markup.
        timeline.add_row(when.isoformat(timespec="milliseconds"), Text(what), Text(detail))
    console.print(timeline)


# -- dead letters ---------------------------------------------------------------
@main.group("dead-letters")
def dead_letters() -> None:
    """Messages that could not be processed: list, inspect, replay or discard them."""


@dead_letters.command("list")
@click.option(
    "--status",
    type=click.Choice(["stored", "replayed", "discarded", "all"]),
    default="stored",
    show_default=True,
)
@click.option("--task", help="Only this task name.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def dead_letters_list(status: str, task: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, newest first."""
    rows = letters.list_dead_letters(
        build_container(), status=None if status == "all" else status, task=task, limit=limit
    )
    if as_json:
        _json(rows)
        return
    table = Table()
    for column in ("id", "time", "task", "error", "status"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["id"]), r["created_at"].isoformat(timespec="seconds"), _cell(r["task"]),
            _cell(r["error"][:100]), _cell(r["status"]),
        )  # fmt: skip
    console.print(table)
    if rows and status == "stored":
        console.print("inspect: quota-worker dead-letters show ID · fix the cause, then: replay ID")


@dead_letters.command("show")
@click.argument("letter_id", type=int)
def dead_letters_show(letter_id: int) -> None:
    """Print one dead letter whole: raw body, error, what was done with it."""
    letter = letters.get_dead_letter(build_container(), letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {letter_id}")
    _json(letter)


@dead_letters.command("replay")
@click.argument("letter_ids", type=int, nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every stored dead letter.")
@click.option("--task", help="With --all: only this task.")
def dead_letters_replay(letter_ids: tuple[int, ...], replay_all: bool, task: str | None) -> None:
    """Send dead letters again through the normal path (idempotent: a replay runs once)."""
    container, app = build_container(), build_app()
    if replay_all:
        letter_ids = tuple(
            r["id"] for r in letters.list_dead_letters(container, task=task, limit=100_000)
        )
    if not letter_ids:
        raise click.UsageError("name dead letter ids, or --all")
    failed = 0
    for n, letter_id in enumerate(letter_ids, 1):
        try:
            message_id = letters.replay_dead_letter(container, app, letter_id)
            click.echo(
                f"[{n}/{len(letter_ids)}] {letter_id}: sent again as {printable(message_id)}"
            )
        except letters.NotReplayable as exc:
            failed += 1
            # The reason quotes stored data (task, content type, a discard's reason).
            click.echo(
                f"[{n}/{len(letter_ids)}] {letter_id}: not replayed: {printable(exc)}", err=True
            )
    sys.exit(1 if failed else 0)


@dead_letters.command("discard")
@click.argument("letter_id", type=int)
@click.option("--reason", required=True, help="Why it is dropped (recorded).")
def dead_letters_discard(letter_id: int, reason: str) -> None:
    """Mark a dead letter as handled without replaying it; the reason is recorded."""
    if not letters.discard_dead_letter(build_container(), letter_id, reason, getpass.getuser()):
        raise click.ClickException(f"no dead letter {letter_id}")
    click.echo(f"dead letter {letter_id} discarded")


# -- manual expire / cancel -------------------------------------------------------
def _awaiting(key: str) -> dict[str, Any]:
    change = change_requests.find_change(build_container(), key)
    if change is None:
        raise click.ClickException(f"no change request {key!r}")
    if change["state"] != "awaiting_payment":
        raise click.ClickException(
            f"change {printable(change['request_id'])} is {printable(change['state'])}, "
            "not awaiting payment: nothing to end"
        )
    return change


@main.command()
@click.argument("request_or_order_id")
@click.option("--reason", required=True, help="Why (recorded in the trail).")
def expire(request_or_order_id: str, reason: str) -> None:
    """End a change awaiting payment now, as if its timeout had passed (emits .expired)."""
    change = _awaiting(request_or_order_id)
    actor = f"operator:{getpass.getuser()}"
    done = build_container().bus.as_operator(
        actor, expire=(change["request_id"], change["order_id"], f"operator: {reason}")
    )
    click.echo("expired" if done else "unchanged: it ended meanwhile")


@main.command()
@click.argument("request_or_order_id")
@click.option("--reason", required=True, help="Why (sent in the .cancelled event).")
def cancel(request_or_order_id: str, reason: str) -> None:
    """Cancel a change awaiting payment, as checkout's cancel would (emits .cancelled)."""
    change = _awaiting(request_or_order_id)
    actor = f"operator:{getpass.getuser()}"
    done = build_container().bus.as_operator(
        actor, commands.CancelQuotaChange(change["order_id"], reason)
    )
    click.echo("cancelled" if done else "unchanged: it ended meanwhile")

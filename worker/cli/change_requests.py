"""`quota-worker requests list|show`, `expire` and `cancel`: find a change, read it, end it."""

from __future__ import annotations

import getpass
from datetime import timedelta
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from domain.model import ChangeState
from worker.cli.base import build_container, main
from worker.cli.output import cell, console, echo_json
from worker.ops import change_requests
from worker.ops.safe_text import printable

# Every stored value is escaped (p) and reaches rich as plain Text, never as markup.
p = printable


@main.group()
def requests() -> None:
    """Find change requests and read their whole trail."""


@requests.command("list")
@click.option("--state", type=click.Choice([s.value for s in ChangeState]))
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
        echo_json(rows)
        return
    table = Table()
    for column in ("request", "order", "Service Mail", "change", "state", "expires / reason"):
        table.add_column(column)
    for r in rows:
        note = r["reason"] or (
            r["expires_at"].isoformat(timespec="seconds") if r["expires_at"] else ""
        )
        table.add_row(
            cell(r["request_id"]),
            cell(r["order_id"]),
            cell(r["service_mail_id"]),
            cell(f"{r['expected_address_limit']} → {r['new_address_limit']}"),
            cell(r["state"]),
            cell(note),
        )
    console.print(table)


def _duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError) as exc:
        raise click.BadParameter(f"{text!r}: use a number with s, m, h or d, e.g. 30m") from exc


@requests.command("show")
@click.argument("request_or_order_id")
@click.option("--json", "as_json", is_flag=True)
def requests_show(request_or_order_id: str, as_json: bool) -> None:
    """Every message, transition, payment and event of one change (REQUEST_ID or ORDER_ID)."""
    trail = change_requests.request_trail(build_container(), request_or_order_id)
    if trail is None:
        raise click.ClickException(f"no change request or message for {request_or_order_id!r}")
    if as_json:
        echo_json(trail)
        return
    _print_change(trail["change"], request_or_order_id)
    _print_timeline(change_requests.timeline(trail))


def _print_change(change: dict[str, Any] | None, key: str) -> None:
    if change is None:
        console.print(Text(f"no change request for order {p(key)} (yet); its messages:"))
        return
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


def _print_timeline(entries: list[change_requests.Entry]) -> None:
    timeline = Table(title="trail", title_justify="left")
    for column in ("time", "what", "detail"):
        timeline.add_column(column)
    for when, what, detail in entries:
        # what and detail are escaped above: Text keeps them from being read as markup.
        timeline.add_row(when.isoformat(timespec="milliseconds"), Text(what), Text(detail))
    console.print(timeline)


_UNCHANGED = "unchanged: it ended meanwhile"


def _end(key: str, how: str, reason: str) -> bool:
    """End the change awaiting payment named by its request_id or order_id, as the user."""
    # The reason fits where it goes (a cancel's is the contract's, at most 200).
    if (too_long := change_requests.reason_too_long(how, reason)) is not None:
        raise click.BadParameter(too_long, param_hint="--reason")
    actor = f"operator:{getpass.getuser()}"
    try:
        return change_requests.end_stuck_change(
            build_container(), key, how, reason, actor, order_id_too=True
        )
    except change_requests.NotAwaiting as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("request_or_order_id")
@click.option(
    "--reason", required=True, help="Why (recorded in the trail; at most 190 characters)."
)
def expire(request_or_order_id: str, reason: str) -> None:
    """End a change awaiting payment now, as if its timeout had passed (emits .expired)."""
    click.echo("expired" if _end(request_or_order_id, "expire", reason) else _UNCHANGED)


@main.command()
@click.argument("request_or_order_id")
@click.option(
    "--reason", required=True, help="Why (sent in the .cancelled event; at most 200 characters)."
)
def cancel(request_or_order_id: str, reason: str) -> None:
    """Cancel a change awaiting payment, as checkout's cancel would (emits .cancelled)."""
    click.echo("cancelled" if _end(request_or_order_id, "cancel", reason) else _UNCHANGED)

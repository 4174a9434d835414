"""`quota-worker dead-letters list|show|replay|discard`: messages that could not be processed."""

from __future__ import annotations

import getpass
import sys

import click
from rich.table import Table

from worker.cli.base import build_app, build_container, main
from worker.cli.output import cell, console, echo_json
from worker.ops import dead_letters as letters
from worker.ops.safe_text import printable


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
        echo_json(rows)
        return
    table = Table()
    for column in ("id", "time", "task", "error", "status"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["id"]), r["created_at"].isoformat(timespec="seconds"), cell(r["task"]),
            cell(r["error"][:100]), cell(r["status"]),
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
    echo_json(letter)


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
            message_id = letters.replay_dead_letter(container, app, letter_id, getpass.getuser())
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
    try:  # only a stored letter: of a replay and a discard at the same time, one wins
        letters.discard_dead_letter(build_container(), letter_id, reason, getpass.getuser())
    except letters.AlreadyHandled as exc:
        raise click.ClickException(printable(exc)) from exc
    click.echo(f"dead letter {letter_id} discarded")

"""`quota-worker prune` and `events republish`: keeping it running for years."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from worker.cli.base import build_container, main
from worker.ops.safe_text import printable

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Moment(click.ParamType[datetime]):
    """An ISO 8601 time (UTC if it names no offset), or a time ago: 90m, 12h, 7d."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        ago = _AGO.match(str(value))
        if ago:
            return datetime.now(UTC) - timedelta(**{_UNITS[ago[2]]: float(ago[1])})
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither an ISO 8601 time nor a time ago (90m, 12h, 7d)")
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@main.command()
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
def prune(dry_run: bool) -> None:
    """Remove what the retention settings let go: published events past
    QUOTA_OUTBOX_RETENTION_SECONDS, processed-message ids and discarded dead letters past
    QUOTA_DEDUP_RETENTION_SECONDS, in small batches (`run` does the same as it goes)."""
    from worker.adapters.prune import prune as run_prune

    container = build_container()

    def progress(kind: str, removed: int) -> None:
        click.echo(f"  {kind.replace('_', ' ')}: {removed} removed so far", err=True)

    done = run_prune(
        container.database, container.retention(), datetime.now(UTC), dry_run=dry_run,
        progress=progress,
    )  # fmt: skip
    verb = "would remove" if dry_run else "removed"
    for kind, n in done.items():
        click.echo(f"{verb} {n} {kind.replace('_', ' ')}")


@main.group()
def events() -> None:
    """The events this service published."""


@events.command("republish")
@click.option("--since", type=Moment(), required=True, help="From this time on (inclusive).")
@click.option("--until", type=Moment(), default=None, help="Up to this time (exclusive).")
@click.option("--service-mail", "service_mail", default=None, help="Only this Service Mail's.")
@click.option("--stream", default=None, help="Into this stream [default: QUOTA_EVENTS_STREAM].")
@click.option("--dry-run", is_flag=True, help="Only count what would be published.")
def republish(
    since: datetime, until: datetime | None, service_mail: str | None, stream: str | None,
    dry_run: bool,
) -> None:  # fmt: skip
    """Publish stored events again, in their original order and with their original ids
    (after a stream was lost, or into a new consumer's own stream)."""
    from events.stream import StreamPublisher
    from worker.adapters import republish as rp

    container = build_container()
    window = rp.Window(since, until, service_mail)
    retention = timedelta(seconds=container.settings.outbox_retention_seconds)
    try:
        rp.check_window(window, datetime.now(UTC) - retention)
    except rp.BeyondRetention as exc:
        raise click.ClickException(str(exc)) from exc
    total = rp.count(container.database, window)
    target = stream or container.settings.events_stream
    if dry_run:
        click.echo(f"would publish {total} events into {printable(target)}")
        return

    def progress(sent: int) -> None:
        click.echo(f"  {sent}/{total} published", err=True)

    publisher = StreamPublisher(container.redis, target)  # never trims: it may be a backfill
    sent = rp.republish(container.database, publisher, window, progress)
    click.echo(f"published {sent} events into {printable(target)}")

"""The commands that set up, run and demonstrate the worker.

`db upgrade`, `run`, `dev`, `demo`, `contract schemas|asyncapi|openapi`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from worker.cli.base import check_dependencies, layout_options, load_settings, main, safe_url
from worker.ops.safe_text import printable

if TYPE_CHECKING:
    from worker.bootstrap import Container


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest revision (Alembic)."""
    from worker.adapters.migrate import upgrade

    settings = load_settings()
    url = settings.database()
    click.echo(f"migrating {safe_url(url)} ...", err=True)
    upgrade(url)
    click.echo("schema is at the latest revision", err=True)


def _run(processes: int, concurrency: int, pool: str) -> int:
    from worker.bootstrap import build
    from worker.entrypoints.lifeline import die_with_supervisor
    from worker.entrypoints.runner import Layout, Runner

    die_with_supervisor()  # started by `demo`: stop with it, even if it is killed
    settings = load_settings()
    check_dependencies(settings)
    container = build(settings)
    _check_plans(container)
    level = os.environ.get("QUOTA_LOG_LEVEL", "INFO").upper()
    runner = Runner(container, Layout(processes, concurrency, pool, level))
    return runner.run_until_signal()


def _check_plans(container: Container) -> None:
    from worker.ops.preflight import missing_plans

    missing = missing_plans(container.database, container.settings.plan_table)
    if missing:
        named = ", ".join(f"{printable(p)!r} ({n} Service Mails)" for p, n in missing.items())
        raise click.ClickException(
            f"QUOTA_PLANS lacks plans that stored Service Mails are on: {named}. Their "
            "messages could not be decided; add the plans to QUOTA_PLANS (the README's "
            "settings show its form) and start again."
        )


@main.command()
@layout_options
def run(processes: int, concurrency: int, pool: str) -> None:
    """Run the worker: all queues, the expiry sweep and the event relay, until SIGTERM/SIGINT."""
    sys.exit(_run(processes, concurrency, pool))


@main.command()
@layout_options
def dev(processes: int, concurrency: int, pool: str) -> None:
    """Run on the embedded default: own Redis and an SQLite file under QUOTA_DATA_DIR."""
    from worker.adapters.embedded import EmbeddedRedis, EmbeddedRedisError
    from worker.adapters.migrate import upgrade
    from worker.entrypoints.api_child import ApiChild, start_beside

    settings = load_settings()
    try:
        embedded = EmbeddedRedis(settings.data_path).start()
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from exc
    api: ApiChild | None = None
    try:
        os.environ.setdefault("QUOTA_BROKER_URL", embedded.broker_url)
        os.environ.setdefault("QUOTA_REDIS_URL", embedded.redis_url)
        settings = load_settings()
        upgrade(settings.database())
        # Only the API's environment holds the token: the workers never see it.
        api, served = start_beside(settings.api_host, os.environ)
        click.echo(
            f"embedded Redis: {embedded.broker_url}\n"
            f"database:       {safe_url(settings.database())}\n"
            f"event stream:   {settings.events_stream}\n"
            f"{served}\n"
            "Ctrl-C stops the worker and the API cleanly.",
            err=True,
        )
        code = _run(processes, concurrency, pool)
    finally:
        if api is not None:
            api.stop()
        embedded.stop()
    sys.exit(code)


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the demo keeps its Redis and SQLite files (default: QUOTA_DATA_DIR/demo).",
)
@click.option("--keep", is_flag=True, help="Keep the demo's data from an earlier run.")
@click.option(
    "--keep-running",
    is_flag=True,
    help="After the day, keep the worker and the API (the console) up on its data until Ctrl-C.",
)
def demo(data_dir: Path | None, keep: bool, keep_running: bool) -> None:
    """Play a realistic day of orders through the real queues and worker, then show the outcome.

    The API and its console serve the day as it plays (address and a one-off token printed)."""
    from worker.ops.demo import run_demo

    settings = load_settings()
    path = data_dir or settings.data_path / "demo"
    sys.exit(run_demo(path, keep=keep, keep_running=keep_running))


@main.group()
def contract() -> None:
    """The wire contract as documents, generated from the code (see contract/ in the repo)."""


@contract.command("schemas")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write inbound/*.json and events/*.json into (created if missing).",
)
def contract_schemas(out: Path) -> None:
    """Write a JSON Schema for every inbound message and every event's data."""
    from events.contract import json_schemas, render

    for name, schema in json_schemas().items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema, "json"), encoding="utf-8")
        click.echo(f"wrote {path}", err=True)


@contract.command("asyncapi")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True, help="Output format.")  # fmt: skip
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
def contract_asyncapi(fmt: str, out: Path | None) -> None:
    """Print the AsyncAPI 3.0 document of the contract: queues, stream, messages, examples."""
    from events.asyncapi import DEFAULT_STREAM, asyncapi
    from events.contract import render

    stream = os.environ.get("QUOTA_EVENTS_STREAM", DEFAULT_STREAM)
    text = render(asyncapi(stream), fmt)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@contract.command("openapi")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
def contract_openapi(out: Path | None) -> None:
    """Print the OpenAPI 3.1 document of the HTTP API (`quota-worker api`), from its models."""
    from events.contract import render
    from worker.api.app import openapi_document

    text = render(openapi_document(), "json")
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)

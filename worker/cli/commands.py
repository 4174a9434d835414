"""The commands that set up, run, demonstrate and measure the worker.

`db upgrade`, `run`, `dev`, `demo`, `contract schemas|asyncapi|openapi`, `bench`.
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
    from worker.entrypoints.runner import Layout, Runner

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

    settings = load_settings()
    try:
        embedded = EmbeddedRedis(settings.data_path).start()
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        os.environ.setdefault("QUOTA_BROKER_URL", embedded.broker_url)
        os.environ.setdefault("QUOTA_REDIS_URL", embedded.redis_url)
        settings = load_settings()
        upgrade(settings.database())
        click.echo(
            f"embedded Redis: {embedded.broker_url}\n"
            f"database:       {safe_url(settings.database())}\n"
            f"event stream:   {settings.events_stream}\n"
            "Ctrl-C stops the worker cleanly.",
            err=True,
        )
        code = _run(processes, concurrency, pool)
    finally:
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
def demo(data_dir: Path | None, keep: bool) -> None:
    """Play a realistic day of orders through the real queues and worker, then show the outcome."""
    from worker.ops.demo import run_demo

    settings = load_settings()
    sys.exit(run_demo(data_dir or settings.data_path / "demo", keep=keep))


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


@main.command()
@click.option(
    "--quick", is_flag=True, help="A short run (~1 minute) that proves the benchmark works."
)
@click.option(
    "--soak",
    is_flag=True,
    help="Instead: the workload through the real worker for --minutes, with short "
    "retentions, sampling what must stay bounded (quick: 3 minutes).",
)
@click.option(
    "--minutes", type=float, default=None, help="Length of a --soak run [default: 30; quick: 3]."
)
@click.option(
    "--mails",
    type=click.IntRange(1),
    default=None,
    help="Service Mails in the table [default: 1000; quick: 100].",
)
@click.option(
    "--orders",
    type=click.IntRange(10),
    default=None,
    help="Orders in the drained workload [default: 10000; quick: 400].",
)
@click.option(
    "--history",
    type=click.IntRange(0),
    default=0,
    help="Also drain the workload on a database holding this many past changes (rounded "
    "to whole rounds of 4 per Service Mail) beside an empty one: the history-size row.",
)
@click.option(
    "--prune-pair",
    is_flag=True,
    help="Also drain it twice on a seeded history: pruning idle, then on short retentions.",
)
@click.option(
    "--latency-seconds",
    type=float,
    default=None,
    help="Length of each open-loop latency run [default: 20; quick: 4].",
)
@click.option(
    "--database-url",
    default=None,
    help="A PostgreSQL server URL (a fresh database is created and dropped) "
    "[default: an SQLite file].",
)
@click.option("--broker-url", default=None, help="Broker URL [default: an embedded Redis].")
@click.option("--redis-url", default=None, help="Stream Redis URL [default: an embedded Redis].")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the JSON result [default: bench/results/<time>-<target>.json].",
)
@layout_options
def bench(
    quick: bool,
    soak: bool,
    minutes: float | None,
    mails: int | None,
    orders: int | None,
    history: int,
    prune_pair: bool,
    latency_seconds: float | None,
    database_url: str | None,
    broker_url: str | None,
    redis_url: str | None,
    out: Path | None,
    processes: int,
    concurrency: int,
    pool: str,
) -> None:
    """Benchmark quota-worker against bare Celery moving the same messages (no-op tasks).

    Prints throughput of both and their ratio, payment-to-event latency at 50% and 90%
    of the measured peak, CPU per order, peak RSS and the database's own floor, and
    writes them as JSON. Takes a few minutes; --quick about one.
    """
    from bench.run import run
    from bench.setup import Options

    options = Options(
        mails=mails or (100 if quick else 1000),
        orders=orders or (400 if quick else 10_000),
        processes=processes,
        concurrency=concurrency,
        pool=pool,
        latency_seconds=latency_seconds or (4.0 if quick else 20.0),
        floor_orders=200 if quick else 2000,
        refusals=2000 if quick else 20_000,
        history=history,
        prune_pair=prune_pair,
    )
    try:
        if soak:
            from bench.soak import soak as run_soak
            from bench.soak import soak_options

            result = run_soak(
                options, soak_options(minutes, quick), database_url, broker_url, redis_url, out,
                click.echo,
            )  # fmt: skip
            if not result["verdict"]["flat"]:
                raise click.ClickException("the soak did not stay flat: see the table above")
            return
        run(options, database_url, broker_url, redis_url, out, click.echo)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc

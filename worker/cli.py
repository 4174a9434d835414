"""The `quota-worker` command."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# prometheus-client chooses where counters live when it is first imported:
# with a metrics port, the supervisor and the worker processes it starts
# must share one directory, so it is set before anything imports it.
if os.environ.get("QUOTA_METRICS_PORT") and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="quota-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import redis
import structlog
from pydantic import ValidationError
from sqlalchemy import make_url

from worker import logs
from worker.ops.safe_text import printable

log = structlog.get_logger("quota-worker")

_layout_options: list[Callable[[Any], Any]] = [
    click.option(
        "--processes",
        type=click.IntRange(1, 64),
        default=lambda: int(os.environ.get("QUOTA_WORKER_PROCESSES", "1")),
        show_default="QUOTA_WORKER_PROCESSES or 1",
        help="Celery worker processes, each with its own broker consumer.",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 256),
        # A task waits on the database about half of its time (measured, docs/PERFORMANCE.md):
        # two pool slots per CPU keep the CPUs busy while others wait.
        default=lambda: int(
            os.environ.get("QUOTA_WORKER_CONCURRENCY", str(2 * (os.cpu_count() or 1)))
        ),
        show_default="QUOTA_WORKER_CONCURRENCY or twice the number of CPUs",
        help="Pool size of each worker process.",
    ),
    click.option(
        "--pool",
        type=click.Choice(["prefork", "solo", "threads"]),
        default=lambda: os.environ.get("QUOTA_WORKER_POOL", "prefork"),
        show_default="QUOTA_WORKER_POOL or prefork",
        help="Celery execution pool.",
    ),
]


def layout_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_layout_options):
        func = option(func)
    return func


def load_settings() -> Any:
    from worker.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        raise click.ClickException(
            "the settings are not valid:\n"
            + "\n".join(lines)
            + "\nFix the QUOTA_* environment variables named above."
        ) from exc


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """quota-worker: applies Service Mail address-limit changes from checkout messages.

    Settings come from QUOTA_* environment variables (see the README).
    """
    logs.configure()


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


def check_dependencies(settings: Any, wait_seconds: float = 30) -> None:
    """The schema is migrated and the stream's Redis answers; else a ClickException saying why."""
    from worker.adapters.migrate import current_head, current_revision

    url = settings.database()
    try:
        revision = current_revision(url)
    except Exception as exc:
        raise click.ClickException(f"cannot reach the database {safe_url(url)}: {exc}") from exc
    if revision != current_head():
        raise click.ClickException(
            f"the database {safe_url(url)} is at revision {printable(revision or 'none')}, "
            f"not {current_head()}: run `quota-worker db upgrade` first"
        )
    client = redis.Redis.from_url(settings.redis(), socket_timeout=5, socket_connect_timeout=5)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            client.ping()
            return
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() > deadline:
                hint = (
                    "start `quota-worker dev` for the embedded default, or set QUOTA_REDIS_URL"
                    if settings.redis_url is None
                    else "check QUOTA_REDIS_URL"
                )
                raise click.ClickException(
                    f"cannot reach Redis for the event stream ({exc}): {hint}"
                ) from exc
            time.sleep(1)


def _run(processes: int, concurrency: int, pool: str) -> int:
    from worker.bootstrap import build
    from worker.entrypoints.runner import Layout, Runner

    settings = load_settings()
    check_dependencies(settings)
    level = os.environ.get("QUOTA_LOG_LEVEL", "INFO").upper()
    runner = Runner(build(settings), Layout(processes, concurrency, pool, level))
    return runner.run_until_signal()


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
    from events.contract import DEFAULT_STREAM, asyncapi, render

    stream = os.environ.get("QUOTA_EVENTS_STREAM", DEFAULT_STREAM)
    text = render(asyncapi(stream), fmt)
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
    mails: int | None,
    orders: int | None,
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
    from bench.run import Options, run

    options = Options(
        mails=mails or (100 if quick else 1000),
        orders=orders or (400 if quick else 10_000),
        processes=processes,
        concurrency=concurrency,
        pool=pool,
        latency_seconds=latency_seconds or (4.0 if quick else 20.0),
        floor_orders=200 if quick else 2000,
        refusals=2000 if quick else 20_000,
    )
    try:
        run(options, database_url, broker_url, redis_url, out, click.echo)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


def _register_operator_commands() -> None:
    from worker.cli_ops import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_operator_commands()

if __name__ == "__main__":
    main()

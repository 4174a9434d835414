"""`quota-worker bench`: the benchmark against bare Celery, and its soak form."""

from __future__ import annotations

from pathlib import Path

import click

from worker.cli.base import layout_options, main
from worker.settings import Settings

BATCH_MAX_DEFAULT: int = Settings.model_fields["batch_max"].default


def _sizes(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...]:
    from bench.batches import parse_sizes

    if not value:
        return ()
    try:
        return parse_sizes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


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
    "--batch-max",
    type=click.IntRange(1, 100),
    default=BATCH_MAX_DEFAULT,
    show_default=True,
    help="QUOTA_BATCH_MAX of the quota-worker runs (drains, latency, history). Above 1, "
    "the no-op baseline also runs at that worker's prefetch; the ratio is against the "
    "faster baseline.",
)
@click.option(
    "--batch-curve",
    callback=_sizes,
    default=None,
    metavar="SIZES",
    help="After the other phases, for each batch size of this comma list (e.g. "
    "1,2,5,10,20,50): the drain on a fresh database and the latency at 50% and 90% of "
    "its rate.",
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
    batch_max: int,
    batch_curve: tuple[int, ...],
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
        api_seconds=10.0 if quick else 20.0,
        history=history,
        prune_pair=prune_pair,
        batch_max=batch_max,
        batch_curve=batch_curve,
        # The soak's worker as before: prometheus-client's multiprocess files (a metrics
        # port) would be state of its own over a long run.
        batch_sizes=not soak,
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

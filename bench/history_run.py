"""The benchmark's drains on a database that already holds a history (bench/history.py):

- the history-size row (issue 19, `--history N`): the same drain as on the empty
  database, on a fresh one holding N past changes and all their rows;
- the prune pair (issue 15, `--prune-pair`): that drain twice on a database holding
  PRUNE_CHANGES past changes (or --history's N if fewer), once with the retentions at
  their defaults (the runner's pruner finds nothing old enough) and once with retentions
  of PRUNE_RETENTION_SECONDS, so that every pruning pass (every quarter of the
  retention) deletes its full share of outbox rows and processed ids while the drain
  runs. The sweep, and with it the pruning pass, runs every SWEEP_SECONDS in both.

Each drain runs its own `quota-worker run` (with `--batch-max`'s QUOTA_BATCH_MAX) on its
own database, back to back with the others in one invocation, so they share the machine's
conditions as far as they can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text

from bench.history import TAG, seed_history
from bench.scans import Scans
from bench.setup import Options, Target, log, seed_mails
from bench.workload import generate
from worker.adapters.migrate import scratch_database

PRUNE_CHANGES = 200_000
PRUNE_RETENTION_SECONDS = 40.0
SWEEP_SECONDS = 2.0
_SEEDED = {  # the seeded rows still there (read outside the measured drain)
    "outbox": text("SELECT count(*) FROM outbox WHERE order_id LIKE :p"),
    "processed_messages": text("SELECT count(*) FROM processed_messages WHERE message_id LIKE :m"),
}


def _seeded_left(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = {k: int(conn.execute(q, {"p": f"ord-{TAG}-%", "m": f"msg-{TAG}-%"}).scalar_one())
                 for k, q in _SEEDED.items()}  # fmt: skip
    engine.dispose()
    return found


def drain_on_history(
    bench: Any,
    target: Target,
    options: Options,
    label: str,
    changes: int,
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The workload's drain through `quota-worker run` on a fresh database holding
    `changes` past changes (none if 0) on the workload's Service Mails."""
    data_dir: Path = bench.data_dir
    name = f"{make_url(target.database_url).database or 'x'}_{label}"[:60]
    sqlite_file = data_dir / f"bench-{label}.sqlite3"
    with scratch_database(target.database_url, sqlite_file, name) as url:
        seed_mails(url, "base", options.mails)
        seeded = seed_history(url, options.mails, changes) if changes else None
        if seeded:
            log(f"{label}: seeded {seeded['changes']:,} past changes in {seeded['seconds']} s: "
                f"{seeded['rows']}")  # fmt: skip
        workload = generate("base", options.mails, options.orders)
        own = bench.target
        bench.target = replace(target, database_url=url)
        try:
            with bench.quota_worker(settings) as (root, names):
                before = _seeded_left(url)
                with Scans(url) as scans:
                    drain = bench.drain([root], names, workload)
                batch_sizes = bench.last_batch_sizes
                after = _seeded_left(url)
                drain.outcomes = bench.outcomes()
        finally:
            bench.target = own
    removed = {k: before[k] - after[k] for k in before}
    log(f"{label}: {drain.rate} messages/s; seeded rows pruned during the drain {removed}")
    return {"label": label, "seed": seeded, "settings": settings or {},
            "drain": {**asdict(drain), "batch_sizes": batch_sizes},
            "database_scans": scans.result, "seeded_rows_pruned_during_drain": removed}  # fmt: skip


def history_row(bench: Any, target: Target, options: Options) -> dict[str, Any]:
    """The history-size row: an empty database and one with `options.history` past
    changes, the same drain on each, back to back."""
    log(f"history row: the drain on an empty database, then with {options.history:,} past "
        "changes")  # fmt: skip
    empty = drain_on_history(bench, target, options, "empty", 0)
    full = drain_on_history(bench, target, options, "history", options.history)
    return {"empty": empty, "history": full,
            "ratio": round(full["drain"]["rate"] / empty["drain"]["rate"], 3)}  # fmt: skip


def prune_pair(bench: Any, target: Target, options: Options) -> dict[str, Any]:
    changes = min(options.history or PRUNE_CHANGES, PRUNE_CHANGES)  # a quick run's fewer
    sweep = {"QUOTA_SWEEP_INTERVAL_SECONDS": f"{SWEEP_SECONDS:g}"}
    short = {
        **sweep,
        **{f"QUOTA_{k}_RETENTION_SECONDS": f"{PRUNE_RETENTION_SECONDS:g}"
           for k in ("STREAM", "OUTBOX", "DEDUP")},
    }  # fmt: skip
    log(f"prune pair: {changes:,} past changes; pruning idle, then on "
        f"{PRUNE_RETENTION_SECONDS:g} s retentions")  # fmt: skip
    off = drain_on_history(bench, target, options, "prune_off", changes, sweep)
    on = drain_on_history(bench, target, options, "prune_on", changes, short)
    return {"off": off, "on": on, "ratio": round(on["drain"]["rate"] / off["drain"]["rate"], 3)}


def extra_phases(bench: Any, target: Target, options: Options) -> dict[str, Any]:
    """What `--history` and `--prune-pair` add to the result."""
    found: dict[str, Any] = {}
    if options.history:
        found["history_row"] = history_row(bench, target, options)
    if options.prune_pair:
        found["prune_pair"] = prune_pair(bench, target, options)
    return found


def _row(name: str, d: dict[str, Any], summary: Callable[[Any, int], str]) -> str:
    drain = d["drain"]
    cpu = 1000 * drain["cpu_seconds"] / max(drain["messages"], 1)
    servers = ", ".join(f"{k} {1000 * v / max(drain['messages'], 1):.2f}"
                        for k, v in sorted(drain["server_cpu_seconds"].items()))  # fmt: skip
    return (f"| {name} | {drain['messages']} | {drain['rate']} | {cpu:.2f} | {servers} | "
            f"{summary(d['database_scans'], drain['messages'])} |")  # fmt: skip


def lines(r: dict[str, Any]) -> list[str]:
    """The history row and the prune pair, as a table of their own."""
    from bench.scans import summary

    out: list[str] = []
    head = ["", "| drain | messages | messages/s | worker CPU ms/message | server CPU ms/message"
            " | database reads |", "| --- | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    row = r.get("history_row")
    if row:
        n = row["history"]["seed"]["changes"]
        out += [*head, _row("empty database", row["empty"], summary),
                _row(f"{n:,} past changes", row["history"], summary),
                f"| ratio (history / empty) | | **{row['ratio']}** | | | |"]  # fmt: skip
    pair = r.get("prune_pair")
    if pair:
        pruned = pair["on"]["seeded_rows_pruned_during_drain"]
        out += [*head, _row("pruning idle (default retentions)", pair["off"], summary),
                _row(f"pruning on ({PRUNE_RETENTION_SECONDS:g} s retentions; removed during "
                     f"the drain: {pruned})", pair["on"], summary),
                f"| ratio (on / idle) | | **{pair['ratio']}** | | | |"]  # fmt: skip
    return out

"""What the drain read, table by table, on PostgreSQL; and statistics kept as autovacuum would.

This machine's PostgreSQL runs with autovacuum off, so nothing re-analyzes the
tables during a run: `Analyzer` does what autovacuum would (ANALYZE a table once
its changes since the last analysis pass autovacuum's default threshold, 50 rows
plus 10% of the table), checked every 5 s instead of autovacuum's 60 s naptime.
`Scans` takes `pg_stat_user_tables` before and after the drain: sequential scans,
the rows they read, and index scans per table.

What counts as a plan gone wrong (issue 19): a sequential scan of a hot-path table that
was larger than SMALL_TABLE_PAGES pages when it happened. Below that, a sequential scan
is what PostgreSQL's planner rightly prefers: with the default costs, one row found by
primary key costs about 8 (two random pages) by index and about 1.4 a page by scanning a
table of some 35 rows a page, so the planner scans tables up to about 6 pages, and under
autovacuum a plan made then lasts until the next analysis (50 rows plus 10% later). An
empty table (`addresses` and `early_cancels` in this workload) is scanned for nothing.
Such scans happen only while a database is new; the history-size row
(bench/history_run.py) shows the same drain on a database of production size reading no
hot-path table by sequential scan of any size. To tell the two apart the sampler reads
the counters and each table's size every SAMPLE_SECONDS and counts an interval's
sequential scans as "large" when the table was over the limit at the interval's end (so
a scan is counted large if it may have been: the table only grows in a drain).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine, create_engine, text

# The tables a message reads or writes: a sequential scan of one is a plan gone wrong.
HOT_PATH = ("service_mails", "addresses", "quota_changes", "change_transitions", "payments",
            "early_cancels", "processed_messages", "outbox", "limit_history")  # fmt: skip
ANALYZE_CHECK_SECONDS = 5.0
SAMPLE_SECONDS = 1.0  # about how often backends flush their table counters
SMALL_TABLE_PAGES = 16  # 128 KiB: over twice the size up to which a scan is the better plan
ANALYZE_THRESHOLD, ANALYZE_SCALE_FACTOR = 50, 0.1  # autovacuum's defaults

_STATS = text(
    "SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan, "
    "n_mod_since_analyze, n_live_tup, pg_relation_size(relid) / 8192 AS pages "
    "FROM pg_stat_user_tables"
)


def _stats(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.relname: row for row in conn.execute(_STATS)}


def _large(before: dict[str, Any], after: dict[str, Any], into: dict[str, dict[str, int]]) -> None:
    """Add the interval's sequential scans of tables over SMALL_TABLE_PAGES at its end."""
    for name, row in after.items():
        was = before.get(name)
        if was is None or row.pages <= SMALL_TABLE_PAGES:
            continue
        found = into.setdefault(name, {"seq_scan": 0, "seq_tup_read": 0})
        found["seq_scan"] += int(row.seq_scan) - int(was.seq_scan)
        found["seq_tup_read"] += int(row.seq_tup_read) - int(was.seq_tup_read)


class Analyzer:
    """A thread that ANALYZEs each table when autovacuum would, and counts the sequential
    scans of tables over SMALL_TABLE_PAGES, until stopped."""

    def __init__(self, engine: Engine, first: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.analyzed: dict[str, int] = {}
        self.large: dict[str, dict[str, int]] = {}
        self.last = first if first is not None else _stats(engine)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="analyzer", daemon=True)

    def __enter__(self) -> Analyzer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def sample(self) -> dict[str, Any]:
        now = _stats(self.engine)
        _large(self.last, now, self.large)
        self.last = now
        return now

    def _run(self) -> None:
        checked = time.monotonic()
        while not self._stop.wait(SAMPLE_SECONDS):
            stats = self.sample()
            if time.monotonic() - checked < ANALYZE_CHECK_SECONDS:
                continue
            checked = time.monotonic()
            for name, row in stats.items():
                due = ANALYZE_THRESHOLD + ANALYZE_SCALE_FACTOR * row.n_live_tup
                if row.n_mod_since_analyze > due:
                    with self.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT"
                    ) as conn:
                        conn.execute(text(f'ANALYZE "{name}"'))
                    self.analyzed[name] = self.analyzed.get(name, 0) + 1


class Scans:
    """Around a drain: the scans it caused, and an autovacuum-like ANALYZE meanwhile."""

    def __init__(self, database_url: str) -> None:
        self.postgres = database_url.startswith("postgresql")
        self.engine = create_engine(database_url) if self.postgres else None
        self.result: dict[str, Any] | None = None

    def __enter__(self) -> Scans:
        if self.engine is not None:
            self._before = _stats(self.engine)
            self._analyzer = Analyzer(self.engine, self._before).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine is None:
            return
        self._analyzer.__exit__()
        time.sleep(1.5)  # other backends flush their table counters about once a second
        after = self._analyzer.sample()
        large = self._analyzer.large
        tables = {}
        for name, row in after.items():
            was = self._before.get(name)
            delta = {
                key: int(getattr(row, key)) - (int(getattr(was, key)) if was else 0)
                for key in ("seq_scan", "seq_tup_read", "idx_scan")
            }
            if any(delta.values()):
                tables[name] = delta
                big = large.get(name, {})
                delta["large_seq_scan"] = big.get("seq_scan", 0)
                delta["large_seq_tup_read"] = big.get("seq_tup_read", 0)
        self.engine.dispose()
        self.result = {
            "statistics": "ANALYZE at autovacuum's default thresholds, checked every "
            f"{ANALYZE_CHECK_SECONDS:g} s during the drain",
            "analyzed": dict(self._analyzer.analyzed),
            "small_table_pages": SMALL_TABLE_PAGES,
            "tables": tables,
            # Read by sequential scans when larger than SMALL_TABLE_PAGES (the docstring).
            "seq_scanned_hot_path_tables": sorted(
                name for name in HOT_PATH if tables.get(name, {}).get("large_seq_scan", 0) > 0
            ),
            "seq_scanned_small_hot_path_tables": sorted(
                name for name in HOT_PATH if tables.get(name, {}).get("seq_scan", 0) > 0
            ),
        }


def summary(scans: dict[str, Any] | None, messages: int) -> str:
    """One table row's text: rows read by sequential scans per message, and any flag."""
    if not scans:
        return "not measured (SQLite keeps no such counters)"
    rows = sum(t["seq_tup_read"] for t in scans["tables"].values())
    large = sum(t.get("large_seq_tup_read", 0) for t in scans["tables"].values())
    pages = scans.get("small_table_pages", 0)
    flagged = scans["seq_scanned_hot_path_tables"]
    flags = (
        f"; **sequential scans of {', '.join(flagged)} over {pages} pages**"
        if flagged
        else f"; none of a hot-path table over {pages} pages"
    )
    return (f"{rows / max(messages, 1):.1f} rows read by sequential scans per message, "
            f"{large / max(messages, 1):.1f} from tables over {pages} pages{flags}")  # fmt: skip

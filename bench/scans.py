"""What the drain read, table by table, on PostgreSQL; and statistics kept as autovacuum would.

This machine's PostgreSQL runs with autovacuum off, so nothing re-analyzes the
tables during a run: `Analyzer` does what autovacuum would (ANALYZE a table once
its changes since the last analysis pass autovacuum's default threshold, 50 rows
plus 10% of the table), checked every 5 s instead of autovacuum's 60 s naptime.
`Scans` takes `pg_stat_user_tables` before and after the drain: sequential scans,
the rows they read, and index scans per table.
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
ANALYZE_THRESHOLD, ANALYZE_SCALE_FACTOR = 50, 0.1  # autovacuum's defaults

_STATS = text(
    "SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan, "
    "n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables"
)


def _stats(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.relname: row for row in conn.execute(_STATS)}


class Analyzer:
    """A thread that ANALYZEs each table when autovacuum would, until stopped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.analyzed: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="analyzer", daemon=True)

    def __enter__(self) -> Analyzer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(ANALYZE_CHECK_SECONDS):
            for name, row in _stats(self.engine).items():
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
            self._analyzer = Analyzer(self.engine).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.engine is None:
            return
        self._analyzer.__exit__()
        time.sleep(1.5)  # other backends flush their table counters about once a second
        after = _stats(self.engine)
        tables = {}
        for name, row in after.items():
            was = self._before.get(name)
            delta = {
                key: int(getattr(row, key)) - (int(getattr(was, key)) if was else 0)
                for key in ("seq_scan", "seq_tup_read", "idx_scan")
            }
            if any(delta.values()):
                tables[name] = delta
        self.engine.dispose()
        self.result = {
            "statistics": "ANALYZE at autovacuum's default thresholds, checked every "
            f"{ANALYZE_CHECK_SECONDS:g} s during the drain",
            "analyzed": dict(self._analyzer.analyzed),
            "tables": tables,
            "seq_scanned_hot_path_tables": sorted(
                name for name in HOT_PATH if tables.get(name, {}).get("seq_scan", 0) > 0
            ),
        }


def summary(scans: dict[str, Any] | None, messages: int) -> str:
    """One table row's text: rows read by sequential scans per message, and any flag."""
    if not scans:
        return "not measured (SQLite keeps no such counters)"
    rows = sum(t["seq_tup_read"] for t in scans["tables"].values())
    flagged = scans["seq_scanned_hot_path_tables"]
    flags = (
        f"; **sequential scans of {', '.join(flagged)}**" if flagged else "; none on the hot path"
    )
    return f"{rows / max(messages, 1):.1f} rows read by sequential scans per message{flags}"

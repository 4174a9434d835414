"""Puts the table of the latest `make reliability` run into docs/RELIABILITY.md."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

KEPT = "<!-- kept by write_report.py: hand-written below, each figure from a named run -->"


def main(table: Path, target: Path) -> None:
    old = target.read_text() if target.exists() else ""
    kept = old[old.index(KEPT) :] if KEPT in old else ""
    backend = os.environ.get("QUOTA_TEST_DATABASE_URL", "SQLite (embedded)").split("@")[-1]
    broker = os.environ.get("QUOTA_TEST_BROKER_URL") or os.environ.get(
        "QUOTA_TEST_REDIS_URL", "embedded Redis (AOF on)"
    )
    orders = os.environ.get("QUOTA_RELIABILITY_ORDERS", "1000")
    target.write_text(
        "# Reliability\n\n"
        "The table below is written by `make reliability`; every number in it comes from its run.\n"
        "Each scenario sends a batch of orders (raises paid on time and early, decreases,\n"
        "duplicated messages, cancels, unpaid expiries, wrong amounts, invalid messages,\n"
        "races on shared Service Mails) through real `quota-worker run` processes while the\n"
        "fault is injected, then checks the invariants of `tests/reliability/invariants.py`\n"
        "from the database and the stream.\n\n"
        "`lost` counts messages that left no trace; every scenario tolerates none. On a\n"
        "Redis broker kombu's own transport pops a message before it records it as\n"
        "unacknowledged (kombu#305, celery#7950), so a consumer killed in between lost it;\n"
        "`worker/adapters/transport.py` pops and records in one Lua script, "
        "which closes that window.\n\n"
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}); "
        f"{orders} orders per scenario; database {backend}; broker {broker.split('@')[-1]}.\n\n"
        + table.read_text()
        + ("\n" + kept if kept else "")
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

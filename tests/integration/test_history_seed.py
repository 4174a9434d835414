"""The benchmark's history seeder (bench/history.py), in its quick form, on the suite's
database server: the rows it promises, rows the worker's schema and rules accept, and
a workload drained on top of them as on an empty database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.history import ROUND, rounded, seed_history
from bench.latency import through_bus
from bench.setup import seed_mails
from bench.workload import START_LIMIT, generate
from domain.errors import REFUND_REASONS, REJECTION_REASONS
from domain.states import ALLOWED, ChangeState
from worker.adapters.migrate import scratch_database
from worker.adapters.prune import Retention, prune
from worker.bootstrap import build
from worker.settings import Settings

MAILS, CHANGES = 20, 2 * ROUND * 20  # two whole rounds per Service Mail


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    server = os.environ.get("QUOTA_TEST_DATABASE_URL")
    name = f"quota_test_history_{os.getpid()}"
    with scratch_database(server, tmp_path / "history.sqlite3", name) as fresh:
        seed_mails(fresh, "base", MAILS)
        yield fresh


def test_the_seed_writes_what_it_promises_in_every_table(url: str) -> None:
    seeded = seed_history(url, MAILS, CHANGES)
    n = CHANGES
    # Per round of four: transitions 2+1+1+2, payments 1+0+0+(0 or 1), limits 1+1,
    # events 2+1+1+(2 or 3), processed ids 2+1+1+(1 or 3).
    assert seeded["rows"] == {
        "quota_changes": n, "change_transitions": n * 6 // 4, "payments": n * 3 // 8,
        "limit_history": n // 2, "outbox": n * 13 // 8, "processed_messages": n * 3 // 2,
    }  # fmt: skip
    assert rounded(CHANGES + 1, MAILS) == CHANGES + ROUND * MAILS


def test_the_seeded_rows_are_ones_the_worker_could_have_written(url: str) -> None:
    seed_history(url, MAILS, CHANGES)
    engine = create_engine(url)
    now = datetime.now(UTC)
    with engine.connect() as conn:
        q = lambda sql: conn.execute(text(sql)).all()  # noqa: E731
        assert {s for (s,) in q("SELECT DISTINCT state FROM quota_changes")} == {
            "applied", "rejected", "expired", "cancelled"}  # fmt: skip
        assert {r for (r,) in q("SELECT DISTINCT reason FROM quota_changes WHERE state = "
                                "'rejected'")} <= set(REJECTION_REASONS)  # fmt: skip
        for from_state, to_state in q("SELECT from_state, to_state FROM change_transitions"):
            assert ChangeState(to_state) in ALLOWED[ChangeState(from_state)]
        assert not q("SELECT t.id FROM change_transitions t LEFT JOIN quota_changes c "
                     "ON c.request_id = t.request_id WHERE c.request_id IS NULL")  # fmt: skip
        assert {s for (s,) in q("SELECT DISTINCT status FROM payments")} == {"used", "refunded"}
        assert {r for (r,) in q("SELECT DISTINCT refund_reason FROM payments WHERE "
                                "refund_reason IS NOT NULL")} <= set(REFUND_REASONS)  # fmt: skip
        assert not q("SELECT p.payment_id FROM payments p LEFT JOIN quota_changes c "
                     "ON c.order_id = p.order_id WHERE c.order_id IS NULL")  # fmt: skip
        assert q("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == [(0,)]
        # Each Service Mail: versions 1..v without a gap, v its version, back at the limit
        # the workload expects.
        for mail, version, limit in q("SELECT id, version, address_limit FROM service_mails"):
            found = q(f"SELECT version FROM limit_history WHERE service_mail_id = '{mail}' "
                      "ORDER BY version")  # fmt: skip
            versions = [v for (v,) in found]
            assert versions == list(range(1, version + 1)) and limit == START_LIMIT
    # Nothing for the sweep, nothing for the pruner at the default retentions, and the
    # workload drains on top of the history as it does on an empty database.
    container = build(Settings(database_url=url, redis_url="redis://127.0.0.1:1/0",
                               events_stream="unused"))  # fmt: skip
    container.redis.publish = lambda *a, **k: 0  # type: ignore[method-assign]
    sweep = container.bus.sweep()
    assert (sweep.expired, sweep.refunded, sweep.decided) == (0, 0, 0)
    kept = Retention(timedelta(days=30), timedelta(days=30))
    assert set(prune(container.database, kept, now, dry_run=True).values()) == {0}
    gone = prune(container.database, Retention(timedelta(days=1), timedelta(days=1)), now,
                 dry_run=True)  # fmt: skip
    assert gone["published_events"] == CHANGES * 13 // 8
    through_bus(container, generate("base", MAILS, 60), "drain")
    container.database.dispose()
    with engine.connect() as conn:
        states = dict(conn.execute(text(
            "SELECT state, count(*) FROM quota_changes WHERE order_id LIKE 'ord-base-%' "
            "GROUP BY state")).all())  # fmt: skip
        reasons = conn.execute(text(
            "SELECT DISTINCT reason FROM quota_changes WHERE order_id LIKE 'ord-base-%' AND "
            "state = 'rejected'")).scalars().all()  # fmt: skip
    engine.dispose()
    assert sum(states.values()) == 60 and states.get("applied", 0) > 40
    assert set(reasons) <= {"below_plan_minimum"}  # no stale_request: the limits line up

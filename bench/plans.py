"""The query plans of every statement on the hot path, on a table of many Service Mails.

    python -m bench.plans --database-url postgresql+psycopg://postgres@localhost/postgres

Creates a fresh database, puts --mails Service Mails in it, plays --orders
orders through the bus and adds addresses and early cancels (so every table
holds rows), runs ANALYZE, then prints
EXPLAIN for each statement the worker runs per message, and the relay's and the
sweep's, as Markdown: the custom plan (made for this call's values) beside the
generic one PostgreSQL keeps once psycopg has prepared the statement. A plan
with a sequential scan of a large table is the sign of a missing index, or of a
partial index's predicate given as a parameter (tests/integration/test_plans.py).
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, create_engine, insert, text
from sqlalchemy.dialects import postgresql

from bench.latency import through_bus
from bench.setup import database, seed_mails
from bench.workload import generate, mail_id
from worker.adapters import prune, relay, republish
from worker.adapters import statements as sql
from worker.adapters import tables as t
from worker.adapters.prune import Retention
from worker.bootstrap import build
from worker.ops import queries
from worker.settings import Settings


def _upkeep(mail: str, now: datetime) -> list[tuple[str, Any, dict[str, Any]]]:
    """The runner's pruning passes, its status sample (also each /metrics scrape) and
    `events republish` (worker/adapters/prune.py, worker/ops/queries.py, republish.py)."""
    kept = Retention(timedelta(days=30), timedelta(days=30))
    found: list[tuple[str, Any, dict[str, Any]]] = []
    for kind in prune.KINDS:
        found += [
            (f"prune {kind.name}: the oldest batch", prune.oldest(kind, prune.expired(
                kind, kept, now), prune.BATCH), {}),
            (f"prune {kind.name}: delete the batch", prune.remove(kind, ["k1", "k2", "k3"])
             if kind.table is t.processed_messages else prune.remove(kind, [1, 2, 3]), {}),
        ]  # fmt: skip
    since = now - timedelta(days=1)
    every, one = republish.Window(since), republish.Window(since, now, service_mail_id=mail)
    sample: list[tuple[str, Any, dict[str, Any]]] = [
        (f"status sample: {state} changes", count, {})
        for state, count in queries.OPEN_CHANGES.items()
    ]
    return [
        *found,
        *sample,
        ("status sample: oldest awaiting change", queries.OLDEST_AWAITING, {}),
        ("status sample: outbox backlog", queries.OUTBOX_BACKLOG, {}),
        ("status sample: oldest unsent event", queries.OLDEST_UNSENT, {}),
        ("status sample: payments held", queries.PAYMENTS_HELD, {}),
        ("status sample: refunds unpublished", queries.REFUNDS_UNPUBLISHED, {}),
        ("republish: count the window", republish.count_query(every), {}),
        ("republish: a batch", republish.batch_query(every, 0), {}),
        ("republish: a batch of one Service Mail", republish.batch_query(one, 0), {}),
    ]


def statements(tag: str) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, statement, parameters) for every statement of the hot path, the sweep, the
    relay, the pruner and `events republish` (all of worker/adapters/statements.py's)."""
    mail, order, now = mail_id(tag, 7), f"ord-{tag}-7", datetime.now(UTC)
    payment, request = f"pay-{tag}-7", f"req-{tag}-7"
    return [
        ("lock the order", sql.LOCK_ORDER, {"order_id": order}),
        ("Service Mail, row lock", sql.MAIL_FOR_UPDATE, {"id": mail}),
        ("A (address paths)", sql.MAIL_IN_USE, {"id": mail}),
        ("payment: its change's Service Mail while awaiting, row lock",
         sql.AWAITING_MAIL_FOR_UPDATE, {"o": order}),
        ("payment: A of that Service Mail", sql.AWAITING_MAIL_IN_USE, {"o": order}),
        ("A and awaiting change (request path)", sql.MAIL_FACTS, {"id": mail}),
        ("change by request or order", sql.CHANGE_BY_REQUEST_OR_ORDER,
         {"r": f"req-{tag}-7", "o": order}),
        ("change by order", sql.CHANGE_BY_ORDER, {"o": order}),
        ("payment by id", sql.PAYMENT, {"id": f"pay-{tag}-7"}),
        ("held payments and early cancel", sql.ORDER_FACTS, {"o": order}),
        ("provisioning: orders of the open changes", sql.OPEN_ORDERS_OF_MAIL, {"id": mail}),
        ("provisioning: the open changes", sql.OPEN_CHANGES_OF_MAIL, {"id": mail}),
        ("processed message (insert; a redelivery fails on the key)",
         sql.INSERT[t.processed_messages],
         {"message_id": "m-x", "task": "t", "outcome": "o", "order_id": order,
          "processed_at": now}),
        ("snapshot: its Service Mail's snapshots, advisory lock", sql.LOCK_SNAPSHOTS, {"id": mail}),
        ("snapshot: the last one's taken_at", sql.LAST_SNAPSHOT, {"id": mail}),
        ("snapshot: the addresses counted", sql.ADDRESSES_OF_MAIL, {"id": mail}),
        ("snapshot: remove addresses", sql.REMOVE_ADDRESSES_PG,
         {"id": mail, "addresses": ["a@x.ch", "b@x.ch"]}),
        ("snapshot: add addresses", sql.ADD_ADDRESSES_PG,
         {"id": mail, "addresses": ["a@x.ch", "b@x.ch"], "now": now}),
        ("relay: claim a batch", relay._CLAIM[True], {"n": 500, "now": now}),
        ("sweep: changes past their timeout", sql.DUE_CHANGES, {"now": now, "n": 500}),
        ("sweep: requests waiting for their Service Mail", sql.UNPROVISIONED_CHANGES,
         {"now": now, "n": 500}),
        ("sweep: unmatched payments", sql.UNMATCHED_PAYMENTS,
         {"before": now, "n": 500}),
        ("processed already?", sql.IS_PROCESSED, {"id": "m-x"}),
        ("batch: processed already?", sql.PROCESSED_AMONG[True], {"ids": ["m-x", "m-y"]}),
        ("batch: lock its Service Mails in order", sql.LOCK_MAILS_IN_ORDER,
         {"mails": [mail], "orders": [order]}),
        ("save the Service Mail", sql.SAVE_MAIL, {"b_id": mail}),
        ("save the change", sql.SAVE_CHANGE, {"b_id": request}),
        ("save the payment", sql.SAVE_PAYMENT, {"b_id": payment}),
        ("address deleted", sql.DELETE_ADDRESS, {"id": mail, "address": "u1@x.example.ch"}),
        ("address created (a repeat ignored)", sql.insert_ignore_statement(t.addresses, True),
         {"service_mail_id": mail, "address": "u1@x.example.ch", "created_at": now}),
        ("early cancel held (a repeat ignored)",
         sql.insert_ignore_statement(t.early_cancels, True),
         {"order_id": order, "reason": "r", "received_at": now}),
        *_upkeep(mail, now),
    ]  # fmt: skip


def generic_plan(conn: Connection, statement: Any, params: dict[str, Any]) -> list[str]:
    """EXPLAIN of the plan PostgreSQL keeps for `statement` once it is prepared and goes
    generic (psycopg prepares a statement after five executions): planned without its
    parameters' values, so a partial index serves it only if its predicate is in the SQL.
    Runs in the connection's transaction (roll it back after)."""
    dialect = postgresql.psycopg.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]
    # render_postcompile: an IN list (the pruner's delete) as one parameter per value.
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    values = {**compiled.params, **params}
    args = [values[name] for name in compiled.positiontup or []]
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with psycopg.ClientCursor(driver) as cur:
        cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cur.execute(f"PREPARE quota_generic AS {compiled}")
        try:
            marks = f"({', '.join(['%s'] * len(args))})" if args else ""
            cur.execute(f"EXPLAIN EXECUTE quota_generic{marks}", args)
            return [str(row[0]) for row in cur.fetchall()]
        finally:
            cur.execute("DEALLOCATE quota_generic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server URL")
    parser.add_argument("--mails", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=2_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qplan-", dir="/tmp"))
    tag = uuid.uuid4().hex[:6]
    with database(args.database_url, work, f"plans_{tag}") as url:
        seed_mails(url, tag, args.mails)
        settings = Settings(database_url=url, redis_url="redis://127.0.0.1:1/0",
                            events_stream="unused")  # fmt: skip
        container = build(settings)
        container.redis.publish = lambda *a, **k: 0  # type: ignore[method-assign]
        workload = generate(tag, args.mails, args.orders)
        through_bus(container, workload, "plan")
        container.database.dispose()
        engine = create_engine(url)
        with engine.begin() as conn:  # the tables the workload leaves empty
            conn.execute(insert(t.addresses), [
                {"service_mail_id": mail_id(tag, n), "address": f"u{k}@{n}.example.ch",
                 "created_at": datetime.now(UTC)} for n in range(0, args.mails, 10)
                for k in range(3)])  # fmt: skip
            conn.execute(insert(t.early_cancels), [
                {"order_id": f"early-{n}", "reason": "cart left", "received_at": datetime.now(UTC)}
                for n in range(2000)])  # fmt: skip
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        with engine.connect() as conn:
            print(f"Plans on PostgreSQL with {args.mails} Service Mails and {args.orders} "
                  "orders played through the bus:\n")  # fmt: skip
            for name, statement, params in statements(tag):
                compiled = statement.compile(dialect=conn.dialect)
                plan = (
                    conn.exec_driver_sql("EXPLAIN " + str(compiled), {**compiled.params, **params})
                    .scalars()
                    .all()
                )
                conn.rollback()
                generic = generic_plan(conn, statement, params)
                conn.rollback()
                print(f"**{name}**\n\ncustom plan (this call's values):\n```\n" + "\n".join(plan)
                      + "\n```\ngeneric plan (once prepared):\n```\n" + "\n".join(generic)
                      + "\n```\n")  # fmt: skip
        engine.dispose()


if __name__ == "__main__":
    main()

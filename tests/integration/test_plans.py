"""On PostgreSQL, every hot-path and sweep statement is served by an index under the plan
it gets once prepared (generic), whatever the planner's statistics say.

psycopg prepares a statement after five executions, and PostgreSQL may then keep a
generic plan, made without the parameters' values: a partial index
(`WHERE state = 'awaiting_payment'`) serves it only if the predicate is in the SQL as
a constant. With sequential scans priced out (`enable_seqscan = off`), a plan that
still holds one had no index it could use.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, create_engine

from bench.plans import generic_plan, statements


@pytest.fixture
def conn(database_url: str) -> Iterator[Connection]:
    if not database_url.startswith("postgresql"):
        pytest.skip("generic plans are PostgreSQL's (SQLite plans every statement anew)")
    engine = create_engine(database_url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


@pytest.mark.parametrize("name", [name for name, _, _ in statements("gp")])
def test_a_hot_path_or_sweep_statement_uses_an_index_under_its_generic_plan(
    conn: Connection, name: str
) -> None:
    _, statement, params = next(s for s in statements("gp") if s[0] == name)
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    plan = generic_plan(conn, statement, params)
    conn.rollback()
    assert not [line for line in plan if "Seq Scan" in line], "\n".join(plan)

"""What `quota-worker run` checks against the stored data before it takes a message."""

from __future__ import annotations

from sqlalchemy import func, select

from domain.plans import PlanTable
from worker.adapters import tables as t
from worker.adapters.db import Database


def plans_in_use(database: Database) -> dict[str, int]:
    """How many Service Mails are on each plan (a plan nobody is on is not listed)."""
    query = select(t.service_mails.c.plan, func.count()).group_by(t.service_mails.c.plan)
    with database.engine.connect() as conn:
        return {plan: count for plan, count in conn.execute(query).tuples()}


def missing_plans(database: Database, plans: PlanTable) -> dict[str, int]:
    """The plans stored Service Mails are on that `plans` lacks, with how many are on each:
    their messages could not be decided (a payment among them would wait with no refund)."""
    return {plan: n for plan, n in sorted(plans_in_use(database).items()) if plan not in plans}

"""The service's status as operators read it: queues, workers, changes, backlog, dead letters.

`snapshot` is what `quota-worker status` prints and `run` samples; `problems`
names every threshold it crosses. A change's trail is `change_requests`, the
dead letters themselves `dead_letters`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from celery import Celery
from sqlalchemy import Connection, func, select

from domain.errors import PaymentIdConflict
from domain.events import RefundRequired
from domain.model import ChangeState
from events.outbound import EVENT_TYPES
from worker.adapters import tables as t
from worker.adapters.deliveries import CONSUMED_QUEUES
from worker.adapters.statements import AWAITING_PAYMENT, PENDING, RECEIVED
from worker.bootstrap import Container, utcnow
from worker.ops.safe_text import printable
from worker.ops.stream_status import stale_groups, stream_facts

T = TypeVar("T")

# How the dead letter of a reused payment id starts (worker/entrypoints/tasks.py).
PAYMENT_ID_CONFLICT = f"{PaymentIdConflict.reason}:"


@dataclass(frozen=True)
class Thresholds:
    max_queue_depth: int = 1000
    max_event_lag_seconds: float = 60.0
    max_dead_letters: int = 0
    require_worker: bool = True


@dataclass
class Status:
    queues: dict[str, int | None]
    unacked: int | None
    workers: dict[str, int]
    changes: dict[str, int]
    oldest_awaiting_seconds: float | None
    # None where the database could not be reached (its problem says so)
    outbox_backlog: int | None
    oldest_unsent_seconds: float | None
    dead_letters: list[dict[str, Any]]
    payments_held: int | None
    refunds_unpublished: int | None
    over_limit: int | None = None  # Service Mails with more addresses than their limit
    consumer_groups: list[dict[str, Any]] = field(default_factory=list)
    stream_length: int | None = None
    redis_used_memory_bytes: int | None = None
    # Stored dead letters of a payment id reused with another order, amount or currency.
    payment_id_conflicts: int | None = None
    # Service Mails a provisioning left outside their plan's bounds: how many, the first few.
    outside_plan: int | None = None
    outside_plan_examples: list[dict[str, Any]] = field(default_factory=list)
    # Per worker node: its batches (batch_max, batches, messages, recent_mean, recent_max).
    batches: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "healthy": self.healthy}


def queue_depths(app: Celery) -> tuple[dict[str, int | None], int | None]:
    """Messages waiting in each queue (both brokers), and in flight (Redis only)."""
    depths: dict[str, int | None] = {}
    unacked = None
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0.2)  # a broker down: told in 1 s
        channel = conn.default_channel
        client = getattr(channel, "client", None)
        if client is not None:
            # kombu on Redis: a queue is a list per priority step (named by the
            # transport), and ack emulation keeps in-flight messages in a hash.
            from worker.adapters.transport import queue_lists

            for queue in CONSUMED_QUEUES:
                lists = queue_lists(channel, queue)
                depths[queue] = sum(int(client.llen(key)) for key in lists)
            unacked = int(client.hlen(channel.unacked_key))
            return depths, unacked
        for queue in CONSUMED_QUEUES:
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except Exception:  # not declared yet: no worker has started on this broker
                depths[queue] = None
                channel = conn.channel()
    return depths, unacked


def workers(app: Celery, timeout: float = 1.5) -> tuple[dict[str, int], dict[str, Any]]:
    """Live worker nodes and their pool size, and their batches (QUOTA_BATCH_MAX, the
    sizes of the last batches), from Celery's remote control."""
    stats = app.control.inspect(timeout=timeout).stats() or {}
    pools = {node: int(s.get("pool", {}).get("max-concurrency", 0)) for node, s in stats.items()}
    return pools, {node: s.get("quota_batches") for node, s in stats.items()}


def _age(now: datetime, since: datetime | None) -> float | None:
    return None if since is None else max(0.0, (now - since).total_seconds())


def snapshot(
    container: Container,
    app: Celery,
    thresholds: Thresholds,
    *,
    ask_workers: bool = True,
    history: bool = True,
) -> Status:
    """The service's state; a dependency that cannot be reached leaves its figures empty
    and is named among the problems, so status always answers.

    `history=False` (the run's periodic sample, each /metrics scrape) counts only the
    open changes (awaiting payment, waiting for their Service Mail), each through its
    partial index: counting the end states reads the whole history, which only grows."""
    now, down = utcnow(), list[str]()
    nowhere: dict[str, int | None] = dict.fromkeys(CONSUMED_QUEUES)
    unknown: tuple[dict[str, int | None], int | None] = (nowhere, None)
    depths, unacked = _reached(down, "the broker", lambda: queue_depths(app), unknown)
    nodes: dict[str, int] = {}
    batches: dict[str, Any] = {}
    if ask_workers and not down:  # a broker out of reach: no worker could answer through it
        nodes, batches = _reached(down, "the broker", lambda: workers(app), (nodes, batches))
    stream = container.settings.events_stream
    facts = _reached(
        down, "Redis (the event stream)",
        lambda: stream_facts(container.redis, stream, now.timestamp()), None,
    )  # fmt: skip
    groups = facts.groups if facts else []
    status = _reached(down, "the database", lambda: _from_database(container, now, history), None)
    if status is None:
        status = Status(depths, unacked, nodes, {}, None, None, None, [], None, None)
    status.queues, status.unacked, status.workers = depths, unacked, nodes
    status.batches = batches
    status.consumer_groups = [g.as_dict() for g in groups]
    if facts is not None:
        status.stream_length = facts.length
        status.redis_used_memory_bytes = facts.redis_used_memory_bytes
    status.problems = down + problems(status, thresholds)
    status.problems += stale_groups(groups, container.settings.stream_retention_seconds)
    return status


def _reached(down: list[str], what: str, read: Callable[[], T], otherwise: T) -> T:
    try:
        return read()
    except Exception as exc:  # any failure to reach it: named, never a traceback
        if not any(d.startswith(f"cannot reach {what}") for d in down):
            down.append(f"cannot reach {what}: {type(exc).__name__}: {printable(str(exc))[:300]}")
        return otherwise


# The sample's statements on tables that grow with the history, each served by an index
# under the generic plan a prepared statement gets (tests/integration/test_plans.py):
# the constant states are literals in the SQL (worker/adapters/statements.py).
_changes, _outbox, _unsent = t.quota_changes, t.outbox, t.outbox.c.sent_at.is_(None)
OPEN_CHANGES = {
    ChangeState.AWAITING_PAYMENT.value: select(func.count()).where(
        _changes.c.state == AWAITING_PAYMENT
    ),
    ChangeState.RECEIVED.value: select(func.count()).where(_changes.c.state == RECEIVED),
}
OLDEST_AWAITING = select(func.min(_changes.c.created_at)).where(
    _changes.c.state == AWAITING_PAYMENT
)
OUTBOX_BACKLOG = select(func.count()).where(_unsent)
OLDEST_UNSENT = select(func.min(_outbox.c.created_at)).where(_unsent)
PAYMENTS_HELD = select(func.count()).where(t.payments.c.status == PENDING)
REFUNDS_UNPUBLISHED = select(func.count()).where(
    _unsent, _outbox.c.type == EVENT_TYPES[RefundRequired]
)


def _from_database(container: Container, now: datetime, history: bool) -> Status:
    with container.database.engine.connect() as conn:
        return Status(
            queues={},
            unacked=None,
            workers={},
            changes=_changes_by_state(conn) if history else _open_changes(conn),
            oldest_awaiting_seconds=_age(now, conn.execute(OLDEST_AWAITING).scalar_one()),
            outbox_backlog=conn.execute(OUTBOX_BACKLOG).scalar_one(),
            oldest_unsent_seconds=_age(now, conn.execute(OLDEST_UNSENT).scalar_one()),
            dead_letters=_dead_letter_summary(conn),
            payments_held=conn.execute(PAYMENTS_HELD).scalar_one(),
            refunds_unpublished=conn.execute(REFUNDS_UNPUBLISHED).scalar_one(),
            over_limit=conn.execute(_OVER_LIMIT).scalar_one(),
            payment_id_conflicts=conn.execute(
                select(func.count()).where(
                    t.dead_letters.c.status == "stored",
                    t.dead_letters.c.error.startswith(PAYMENT_ID_CONFLICT),
                )
            ).scalar_one(),
            outside_plan=conn.execute(
                select(func.count()).where(t.service_mails.c.outside_plan.is_not(None))
            ).scalar_one(),
            outside_plan_examples=_outside_plan(conn),
        )


# Service Mails whose A exceeds their B (the mail platform let more addresses be
# created): read from the addresses, so a Service Mail without any costs nothing.
_OVER = (
    select(t.addresses.c.service_mail_id)
    .join(t.service_mails, t.service_mails.c.id == t.addresses.c.service_mail_id)
    .group_by(t.addresses.c.service_mail_id, t.service_mails.c.address_limit)
    .having(func.count() > t.service_mails.c.address_limit)
    .subquery()
)
_OVER_LIMIT = select(func.count()).select_from(_OVER)


def problems(status: Status, limits: Thresholds) -> list[str]:
    found = []
    for queue, depth in status.queues.items():
        if depth is not None and depth > limits.max_queue_depth:
            found.append(f"queue {queue} holds {depth} messages (> {limits.max_queue_depth})")
    lag = status.oldest_unsent_seconds
    if lag is not None and lag > limits.max_event_lag_seconds:
        found.append(
            f"the oldest unpublished event is {lag:.0f} s old "
            f"(> {limits.max_event_lag_seconds:.0f} s): is the relay running and Redis reachable?"
        )
    stored = sum(d["count"] for d in status.dead_letters)
    if stored > limits.max_dead_letters:
        found.append(
            f"{stored} dead letters wait for an operator: see `quota-worker dead-letters list`"
        )
    if status.payment_id_conflicts:
        found.append(
            f"{status.payment_id_conflicts} payments reuse a payment_id with another order, "
            "amount or currency and are neither applied nor refunded: see "
            "`quota-worker dead-letters list` (error idempotency_conflict)"
        )
    if status.outside_plan:
        shown = "; ".join(f"{m['id']}: {m['why']}" for m in status.outside_plan_examples)
        more = status.outside_plan - len(status.outside_plan_examples)
        found.append(
            f"{status.outside_plan} Service Mails are outside their plan's bounds as provisioned "
            f"(the limit changes only through a request): {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    if limits.require_worker and not status.workers:
        found.append("no worker answered: is `quota-worker run` up?")
    if status.over_limit:
        found.append(
            f"{status.over_limit} Service Mails hold more addresses than their limit "
            "(the mail platform let them be created): see the README, operations"
        )
    return found


def _changes_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        select(t.quota_changes.c.state, func.count()).group_by(t.quota_changes.c.state)
    )
    counts = {state.value: 0 for state in ChangeState}
    counts.update({state: n for state, n in rows})
    return counts


def _open_changes(conn: Connection) -> dict[str, int]:
    return {state: conn.execute(count).scalar_one() for state, count in OPEN_CHANGES.items()}


def _outside_plan(conn: Connection, shown: int = 5) -> list[dict[str, Any]]:
    mails = t.service_mails
    rows = conn.execute(
        select(mails.c.id, mails.c.outside_plan)
        .where(mails.c.outside_plan.is_not(None))
        .order_by(mails.c.id)
        .limit(shown)
    )
    return [{"id": r.id, "why": r.outside_plan} for r in rows]


def _dead_letter_summary(conn: Connection) -> list[dict[str, Any]]:
    error_kind = func.substr(t.dead_letters.c.error, 1, 60)
    rows = conn.execute(
        select(t.dead_letters.c.task, error_kind.label("error"), func.count().label("count"))
        .where(t.dead_letters.c.status == "stored")
        .group_by(t.dead_letters.c.task, error_kind)
        .order_by(func.count().desc())
    )
    return [{"task": r.task, "error": r.error, "count": r.count} for r in rows]

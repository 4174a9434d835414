"""What operators ask of the service: its health, its queues, a change's trail, dead letters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import Connection, func, or_, select, update

from domain.model import ChangeState
from events.inbound import INBOUND
from worker.adapters import tables as t
from worker.adapters.deliveries import CONSUMED_QUEUES, STORED_BODY_BYTES
from worker.bootstrap import Container, utcnow


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
    outbox_backlog: int
    oldest_unsent_seconds: float | None
    dead_letters: list[dict[str, Any]]
    payments_held: int
    refunds_unpublished: int
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


def workers(app: Celery, timeout: float = 1.5) -> dict[str, int]:
    """Live worker nodes and their pool size, from Celery's remote control."""
    stats = app.control.inspect(timeout=timeout).stats() or {}
    return {node: int(s.get("pool", {}).get("max-concurrency", 0)) for node, s in stats.items()}


def _age(now: datetime, since: datetime | None) -> float | None:
    return None if since is None else max(0.0, (now - since).total_seconds())


def snapshot(
    container: Container, app: Celery, thresholds: Thresholds, *, ask_workers: bool = True
) -> Status:
    now = utcnow()
    depths, unacked = queue_depths(app)
    with container.database.engine.connect() as conn:
        status = Status(
            queues=depths,
            unacked=unacked,
            workers=workers(app) if ask_workers else {},
            changes=_changes_by_state(conn),
            oldest_awaiting_seconds=_age(now, _oldest_awaiting(conn)),
            outbox_backlog=conn.execute(
                select(func.count()).where(t.outbox.c.sent_at.is_(None))
            ).scalar_one(),
            oldest_unsent_seconds=_age(
                now,
                conn.execute(
                    select(func.min(t.outbox.c.created_at)).where(t.outbox.c.sent_at.is_(None))
                ).scalar_one(),
            ),
            dead_letters=_dead_letter_summary(conn),
            payments_held=conn.execute(
                select(func.count()).where(t.payments.c.status == "pending")
            ).scalar_one(),
            refunds_unpublished=conn.execute(
                select(func.count()).where(
                    t.outbox.c.sent_at.is_(None), t.outbox.c.type == "mail.quota.refund.required"
                )
            ).scalar_one(),
        )
    status.problems = problems(status, thresholds)
    return status


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
    if limits.require_worker and not status.workers:
        found.append("no worker answered: is `quota-worker run` up?")
    return found


def _changes_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        select(t.quota_changes.c.state, func.count()).group_by(t.quota_changes.c.state)
    )
    counts = {state.value: 0 for state in ChangeState if state is not ChangeState.RECEIVED}
    counts.update({state: n for state, n in rows})
    return counts


def _oldest_awaiting(conn: Connection) -> datetime | None:
    oldest: datetime | None = conn.execute(
        select(func.min(t.quota_changes.c.created_at)).where(
            t.quota_changes.c.state == ChangeState.AWAITING_PAYMENT.value
        )
    ).scalar_one()
    return oldest


def _dead_letter_summary(conn: Connection) -> list[dict[str, Any]]:
    error_kind = func.substr(t.dead_letters.c.error, 1, 60)
    rows = conn.execute(
        select(t.dead_letters.c.task, error_kind.label("error"), func.count().label("count"))
        .where(t.dead_letters.c.status == "stored")
        .group_by(t.dead_letters.c.task, error_kind)
        .order_by(func.count().desc())
    )
    return [{"task": r.task, "error": r.error, "count": r.count} for r in rows]


# -- change requests ---------------------------------------------------------
def list_requests(
    container: Container,
    *,
    state: str | None = None,
    service_mail: str | None = None,
    account: str | None = None,
    older_than: timedelta | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    c = t.quota_changes.c
    query = select(t.quota_changes).order_by(c.created_at.desc()).limit(limit)
    if state:
        query = query.where(c.state == state)
    if service_mail:
        query = query.where(c.service_mail_id == service_mail)
    if account:
        query = query.where(c.account_id == account)
    if older_than:
        query = query.where(c.created_at <= utcnow() - older_than)
    with container.database.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def request_trail(container: Container, key: str) -> dict[str, Any] | None:
    """A change's whole story, by request_id or order_id, from what was recorded as it happened."""
    c = t.quota_changes.c
    with container.database.engine.connect() as conn:
        row = conn.execute(
            select(t.quota_changes).where(or_(c.request_id == key, c.order_id == key))
        ).first()
        order_id = row.order_id if row else key
        messages = conn.execute(
            select(t.processed_messages)
            .where(t.processed_messages.c.order_id == order_id)
            .order_by(t.processed_messages.c.processed_at)
        ).all()
        if row is None and not messages:
            return None
        transitions = (
            conn.execute(
                select(t.transitions)
                .where(t.transitions.c.request_id == row.request_id)
                .order_by(t.transitions.c.id)
            ).all()
            if row
            else []
        )
        payments = conn.execute(
            select(t.payments)
            .where(t.payments.c.order_id == order_id)
            .order_by(t.payments.c.received_at)
        ).all()
        events = conn.execute(
            select(t.outbox).where(t.outbox.c.order_id == order_id).order_by(t.outbox.c.id)
        ).all()
    return {
        "change": dict(row._mapping) if row else None,
        "messages": [dict(m._mapping) for m in messages],
        "transitions": [dict(tr._mapping) for tr in transitions],
        "payments": [dict(p._mapping) for p in payments],
        "events": [
            {
                "id": e.event_id,
                "type": e.type,
                "created_at": e.created_at,
                "published_at": e.sent_at,
                "data": json.loads(e.body)["data"],
            }
            for e in events
        ],
    }


# -- dead letters --------------------------------------------------------------
def list_dead_letters(
    container: Container, *, status: str | None = "stored", task: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    c = t.dead_letters.c
    query = select(t.dead_letters).order_by(c.id.desc()).limit(limit)
    if status:
        query = query.where(c.status == status)
    if task:
        query = query.where(c.task == task)
    with container.database.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_dead_letter(container: Container, letter_id: int) -> dict[str, Any] | None:
    with container.database.engine.connect() as conn:
        row = conn.execute(select(t.dead_letters).where(t.dead_letters.c.id == letter_id)).first()
    return dict(row._mapping) if row else None


class NotReplayable(Exception):
    pass


def replay_dead_letter(container: Container, app: Celery, letter_id: int) -> str:
    """Publish the stored message again through the normal path; returns its message id.

    The message id is derived from the dead letter, so replaying twice is a no-op
    for the worker (it has processed that id), and the row records the replay.
    """
    letter = get_dead_letter(container, letter_id)
    if letter is None:
        raise NotReplayable(f"no dead letter {letter_id}")
    if letter["status"] == "discarded":
        raise NotReplayable(f"dead letter {letter_id} was discarded: {letter['resolution']}")
    task = letter["task"]
    if task not in INBOUND:
        raise NotReplayable(f"dead letter {letter_id} is for {task!r}, not a task of the contract")
    if (letter["body_size"] or 0) > STORED_BODY_BYTES:
        raise NotReplayable(
            f"dead letter {letter_id} keeps only the first {STORED_BODY_BYTES} of its "
            f"{letter['body_size']} bytes: it cannot be replayed; discard it with a reason"
        )
    try:
        body = json.loads(letter["body"])
        args, kwargs = body["args"], body["kwargs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise NotReplayable(
            f"dead letter {letter_id} holds no JSON task payload ({letter['content_type']}): "
            "it cannot be replayed; discard it with a reason"
        ) from exc
    message_id = f"replay-{letter_id}"
    app.send_task(task, args=args, kwargs=kwargs, queue=INBOUND[task][0], task_id=message_id)
    _resolve(container, letter_id, "replayed", f"replayed as {message_id}", message_id)
    return message_id


def discard_dead_letter(container: Container, letter_id: int, reason: str, actor: str) -> bool:
    return _resolve(container, letter_id, "discarded", f"{actor}: {reason}", None)


def _resolve(
    container: Container, letter_id: int, status: str, resolution: str, replayed_as: str | None
) -> bool:
    with container.database.engine.begin() as conn:
        result = conn.execute(
            update(t.dead_letters)
            .where(t.dead_letters.c.id == letter_id)
            .values(
                status=status, resolution=resolution, replayed_as=replayed_as, resolved_at=utcnow()
            )
        )
    return result.rowcount > 0


def find_change(container: Container, key: str) -> dict[str, Any] | None:
    c = t.quota_changes.c
    with container.database.engine.connect() as conn:
        row = conn.execute(
            select(t.quota_changes).where(or_(c.request_id == key, c.order_id == key))
        ).first()
    return dict(row._mapping) if row else None

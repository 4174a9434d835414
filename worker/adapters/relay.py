"""The outbox relay: publishes committed events to the stream, in order, at least once.

It runs as one thread of `quota-worker run`. A worker that commits events
publishes on the wake channel, so an event follows its cause within
milliseconds; a slow poll is only the safety net for a lost wake-up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from sqlalchemy import any_, bindparam, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from events.stream import StreamPublisher, wake_channel
from worker.adapters import tables as t
from worker.adapters.db import Database
from worker.adapters.pipeline import StatementQueue
from worker.ops.metrics import COMMIT_TO_EVENT, EVENTS_PUBLISHED, RELAY_ERRORS

log = structlog.get_logger(__name__)

# Only one relay publishes at a time, whatever the number of worker hosts:
# two relays interleaving would reorder one Service Mail's events.
RELAY_LOCK_KEY = 0x71756F7461  # "quota"
SAFETY_POLL_SECONDS = 1.0
# Under load every commit wakes the relay, which would drain one event at a time (a
# transaction each). Drains start at most this often, so a busy relay takes the events
# of several commits at once; an idle one still drains at the first wake-up.
MIN_DRAIN_INTERVAL_SECONDS = 0.005


def _claim_statement(postgres: bool) -> Any:
    """Mark the oldest unsent rows sent and return them, in one statement. On
    PostgreSQL it also takes the relay lock; a relay without it claims nothing."""
    oldest = (
        select(t.outbox.c.id)
        .where(t.outbox.c.sent_at.is_(None))
        .order_by(t.outbox.c.id)
        .limit(bindparam("n"))
    )
    if postgres:
        # id = ANY(ARRAY(subquery)): the batch's ids are computed once (an InitPlan) and
        # looked up by primary key; `id IN (subquery)` was planned as a hash join over a
        # sequential scan of the whole outbox, which grows with every event ever sent.
        batch = t.outbox.c.id == any_(func.array(oldest.scalar_subquery()))
        # An uncorrelated scalar subquery: PostgreSQL evaluates it once (an InitPlan).
        lock = select(func.pg_try_advisory_xact_lock(RELAY_LOCK_KEY)).scalar_subquery()
        claim = update(t.outbox).where(batch, lock)
    else:
        claim = update(t.outbox).where(t.outbox.c.id.in_(oldest.scalar_subquery()))
    claim = claim.values(sent_at=bindparam("now"))
    return claim.returning(
        t.outbox.c.id, t.outbox.c.type, t.outbox.c.subject, t.outbox.c.body,
        t.outbox.c.created_at,
    )  # fmt: skip


_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}
# The marks need no flush to disk before the relay goes on: lost in a server crash,
# they only make the same events (same ids) go out again, which at-least-once allows.
# Saves a WAL flush per drain, and the relay drains about once per committed message.
_ASYNC_COMMIT = select(func.set_config("synchronous_commit", "off", True))


class Relay:
    def __init__(
        self,
        database: Database,
        publisher: StreamPublisher,
        batch: int = 500,
        after_publish: Callable[[], None] | None = None,
    ) -> None:
        self.database = database
        self.publisher = publisher
        self.batch = batch
        # Test seam: runs between XADD and marking the rows sent.
        self.after_publish = after_publish or (lambda: None)
        self.published = 0

    def drain_once(self) -> int:
        """Publish up to one batch; returns how many events went out.

        One statement claims the batch (marks it sent, returns it) inside a
        transaction that commits only after the XADD: a crash in between rolls
        the marks back and the same events, with the same ids, go out again.
        """
        with self.database.engine.connect() as conn, conn.begin():
            postgres = conn.dialect.name == "postgresql"
            sent_at = datetime.now(UTC)
            queue = StatementQueue(conn)
            if postgres:
                queue.write(_ASYNC_COMMIT, {})  # sent with the claim, one round trip
            (claimed,) = queue.read((_CLAIM[postgres], {"n": self.batch, "now": sent_at}))
            rows = sorted(claimed, key=lambda r: r.id)
            if not rows:
                return 0
            self.publisher.publish(
                [{"type": r.type, "subject": r.subject, "event": r.body} for r in rows]
            )
            self.after_publish()
        self.published += len(rows)
        EVENTS_PUBLISHED.inc(len(rows))
        for row in rows:
            COMMIT_TO_EVENT.observe(max(0.0, (sent_at - row.created_at).total_seconds()))
        return len(rows)

    def drain(self) -> int:
        total = 0
        while (sent := self.drain_once()) > 0:
            total += sent
            if sent < self.batch:
                break
        return total

    def run(self, stop: threading.Event, client: redis.Redis) -> None:
        """Drain on every wake-up until `stop` is set, surviving outages."""
        pubsub = None
        backoff = 0.5
        while not stop.is_set():
            try:
                if pubsub is None:
                    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    pubsub.subscribe(wake_channel(self.publisher.stream))
                started = time.monotonic()
                self.drain()
                backoff = 0.5
                message = pubsub.get_message(timeout=SAFETY_POLL_SECONDS)
                stop.wait(MIN_DRAIN_INTERVAL_SECONDS - (time.monotonic() - started))
                while message is not None:  # coalesce a burst of wake-ups
                    message = pubsub.get_message(timeout=0)
            except (redis.RedisError, SQLAlchemyError, OSError) as exc:
                RELAY_ERRORS.inc()
                log.warning("relay_error", error=str(exc), retry_in=backoff)
                if pubsub is not None:
                    _close_quietly(pubsub)
                    pubsub = None
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        if pubsub is not None:
            _close_quietly(pubsub)
        self._final_drain()

    def _final_drain(self) -> None:
        try:
            self.drain()
        except (redis.RedisError, SQLAlchemyError, OSError) as exc:
            log.warning("relay_final_drain_failed", error=str(exc))


def _close_quietly(pubsub: redis.client.PubSub) -> None:
    with contextlib.suppress(redis.RedisError, OSError):
        pubsub.close()


class Waker:
    """Called after a commit that wrote events: tells the relay to drain now."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client = client
        self.channel = wake_channel(stream)

    def __call__(self, _events: object = None) -> None:
        try:
            self.client.publish(self.channel, b"")
        except redis.RedisError as exc:
            # The event is safe in the outbox; the relay's poll will find it.
            log.warning("relay_wake_failed", error=str(exc))

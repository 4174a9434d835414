"""Batches: several messages of the hot path in one database transaction (issue 18).

With `QUOTA_BATCH_MAX` above 1 the consumer (`worker.entrypoints.consumer`) hands a
message that passed the envelope checks to `Batcher.add` instead of Celery. The batcher
coalesces: while every pool process is busy, what arrives waits for the next batch;
when one is free, up to `QUOTA_BATCH_MAX` waiting messages go to it at once, so an idle
worker never holds a message back. A pool process runs `run_batch`: one unit of work for
the whole batch (`MessageBus.handle_batch`), each message keeping its own outcome,
processed id, transitions, events, metric and log line.

Nothing is acknowledged before the batch's commit: then every message of it, duplicates
included. A batch that cannot be handled whole (a payload that breaks the contract, a
handler's refusal, a transient database error, a redelivery racing it, a time limit,
a killed pool process) is never acknowledged: its messages go through Celery one by one
instead, with everything that path does (retries with backoff, dead letters, task
events). A killed worker's batch comes back from Redis's `unacked` record after the
visibility timeout, or from RabbitMQ when the connection closes, like any message.

Only the hot path's tasks batch; a snapshot, a provisioning and the worker's own
retries (taken from the retry queue, with an eta) always run alone.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import structlog
from celery import bootsteps, current_app
from kombu.serialization import loads
from structlog.contextvars import bound_contextvars

from events.inbound import INBOUND
from events.translate import to_command
from worker.adapters.deliveries import QUEUE_KEY, RETRY_QUEUE
from worker.adapters.transport import acks_in_one_pipeline
from worker.entrypoints.app import TASK_SOFT_TIME_LIMIT, TASK_TIME_LIMIT, container_of
from worker.entrypoints.tasks import record
from worker.ops.metrics import BATCH_SIZE
from worker.service.bus import Inbound

log = structlog.get_logger(__name__)

# The tasks whose messages may share a transaction: each locks at most one order and one
# Service Mail, which the batch takes up front in one global order.
BATCHED = frozenset(
    {
        "quota.request_change",
        "quota.payment_confirmed",
        "quota.cancel_change",
        "mail.address_created",
        "mail.address_deleted",
    }
)

# (task, message id, keyword arguments), as a pool process gets it: the body decoded once,
# in the consumer; None where it is not one of Celery's (args, kwargs, embed) with no args.
Item = tuple[str, str, dict[str, Any] | None]
CONTEXT_KEYS = ("request_id", "order_id", "payment_id", "service_mail_id")


def batchable(message: Any) -> bool:
    """A message that passed the envelope checks and may join a batch."""
    task = message.headers.get("task")
    queue = message.delivery_info.get(QUEUE_KEY)
    return task in BATCHED and queue != RETRY_QUEUE and not message.headers.get("eta")


def run_batch(items: list[Item]) -> list[str | None]:
    """In a pool process: the batch in one transaction. Each message's outcome; None for
    a message the batch could not take (a payload that breaks the contract: the
    one-by-one path tells why and dead-letters it), and None for every message if the
    batch failed (the consumer then sends them through Celery one by one)."""
    results: list[str | None] = [None] * len(items)
    taken: list[tuple[int, Inbound, dict[str, Any]]] = []
    for i, (task, message_id, kwargs) in enumerate(items):
        if kwargs is None:
            continue
        try:
            command = to_command(INBOUND[task].model.model_validate(kwargs))
        except Exception:  # anything a payload provokes is the payload's fault
            continue
        context = {k: kwargs[k] for k in CONTEXT_KEYS if isinstance(kwargs.get(k), str)}
        taken.append((i, Inbound(command, message_id, task), context))
    if not taken:
        return results
    bus = container_of(current_app._get_current_object()).bus
    try:
        outcomes = bus.handle_batch([message for _, message, _ in taken])
    except Exception as exc:
        log.warning(
            "batch_failed_one_by_one", size=len(taken), error=f"{type(exc).__name__}: {exc}"
        )
        return [None] * len(items)
    BATCH_SIZE.observe(len(taken))
    for (i, message, context), outcome in zip(taken, outcomes, strict=True):
        with bound_contextvars(task=message.task, message_id=message.message_id, **context):
            record(message.task, outcome, batch=len(taken))
        results[i] = str(outcome)
    return results


class Batcher:
    """In the consumer (the worker's main process): waiting messages and the batches in
    flight. Everything here runs on the consumer's event loop, callbacks included."""

    def __init__(
        self,
        pool: Any,
        one_by_one: Callable[[Any], None],
        eventer: Any,
        *,
        batch_max: int,
        slots: int,
        defer: Callable[[Callable[[], None]], Any] | None = None,
    ) -> None:
        self._pool = pool
        # The event loop's "call soon": messages delivered in one turn (one pop of
        # several) are handed out together at the end of it, never later.
        self._defer = defer
        self._dispatch_due = False
        self._one_by_one = one_by_one
        self._eventer = eventer
        self._batch_max = batch_max
        self._slots = slots
        self._waiting: deque[Any] = deque()
        self.in_flight = 0
        # Each waiting message's keyword arguments, decoded once on arrival.
        self._kwargs: dict[int, dict[str, Any] | None] = {}
        # The Service Mail (or order) of each waiting message, and those of the batches in
        # flight: one subject's messages are never in two batches at once, so they commit
        # in the order they arrived (an address created, then deleted, stays deleted).
        self._subject: dict[int, str | None] = {}
        self._busy: Counter[str] = Counter()
        self._recent: deque[int] = deque(maxlen=1000)  # the sizes of the last batches
        self._batches = self._messages = 0

    def stats(self) -> dict[str, Any]:
        """What `quota-worker status` shows of this worker's batches."""
        recent = list(self._recent)
        return {
            "batch_max": self._batch_max,
            "batches": self._batches,
            "messages": self._messages,
            "recent_mean": round(sum(recent) / len(recent), 2) if recent else None,
            "recent_max": max(recent, default=None),
            "waiting": len(self._waiting),
        }

    def add(self, message: Any) -> None:
        self._event("task-received", message, name=message.headers["task"], retries=0)
        kwargs = self._kwargs[id(message)] = kwargs_of(message)
        self._subject[id(message)] = subject_of(kwargs)
        self._waiting.append(message)
        if self._defer is None:
            self._dispatch()
        elif not self._dispatch_due:
            self._dispatch_due = True
            self._defer(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_due = False
        while self._waiting and self.in_flight < self._slots:
            # What waits is spread over the free processes: a quiet worker runs messages
            # side by side, a busy one (one process free at a time) fills whole batches.
            free = self._slots - self.in_flight
            batch = self._take(min(self._batch_max, -(-len(self._waiting) // free)))
            if not batch:
                break  # all that waits belongs to subjects in flight: it goes after them
            self.in_flight += 1
            self._batches += 1
            self._messages += len(batch)
            self._recent.append(len(batch))
            items: list[Item] = [
                (m.headers["task"], m.headers["id"], self._kwargs.pop(id(m))) for m in batch
            ]
            started = time.monotonic()
            self._pool.apply_async(
                run_batch,
                args=(items,),
                callback=lambda results, b=batch, t=started: self._done(b, results, t),
                error_callback=lambda exc_info, b=batch: self._failed(b, exc_info),
                soft_timeout=TASK_SOFT_TIME_LIMIT,
                timeout=TASK_TIME_LIMIT,
            )

    def _take(self, size: int) -> list[Any]:
        """Up to `size` waiting messages, each id once (a repeat waits for the next), none
        of a subject in flight; a subject's later messages wait behind one that waits."""
        batch: list[Any] = []
        ids: set[str] = set()
        held: set[str] = set()
        kept: deque[Any] = deque()
        while self._waiting and len(batch) < size:
            message = self._waiting.popleft()
            subject = self._subject[id(message)]
            if message.headers["id"] in ids or (
                subject and (subject in held or self._busy[subject])
            ):
                kept.append(message)
                if subject:
                    held.add(subject)
                continue
            ids.add(message.headers["id"])
            batch.append(message)
        self._waiting.extendleft(reversed(kept))
        for message in batch:
            if subject := self._subject[id(message)]:
                self._busy[subject] += 1
        return batch

    def _release(self, batch: list[Any]) -> None:
        for message in batch:
            if subject := self._subject.pop(id(message), None):
                self._busy[subject] -= 1
                if self._busy[subject] <= 0:
                    del self._busy[subject]

    def _done(self, batch: list[Any], results: list[str | None], started: float) -> None:
        self.in_flight -= 1
        self._release(batch)
        runtime = time.monotonic() - started
        pairs = list(zip(batch, results, strict=True))
        committed = [(m, result) for m, result in pairs if result is not None]
        try:
            with acks_in_one_pipeline(batch[0].channel):
                for message, _ in committed:
                    message.ack()
        except Exception:
            # Committed but unacknowledged: they come back after the visibility timeout
            # and their processed ids recognise them. The rest still goes on below.
            log.exception("batch_acknowledgement_failed", size=len(committed))
        else:
            for message, result in committed:
                self._event("task-succeeded", message, result=result, runtime=runtime)
        for message, outcome in pairs:
            if outcome is None:
                try:
                    self._one_by_one(message)
                except Exception:  # unacknowledged: it comes back after the visibility timeout
                    log.exception("batch_hand_off_failed", message_id=message.headers["id"])
        self._dispatch()

    def _failed(self, batch: list[Any], exc_info: Any) -> None:
        """The pool process died or hit its time limit: nothing of the batch committed."""
        self.in_flight -= 1
        self._release(batch)
        log.warning(
            "batch_lost_one_by_one",
            size=len(batch),
            error=repr(getattr(exc_info, "exception", exc_info)),
        )
        for message in batch:
            self._one_by_one(message)
        self._dispatch()

    def _event(self, kind: str, message: Any, **fields: Any) -> None:
        if self._eventer is not None and self._eventer.enabled:
            self._eventer.send(kind, uuid=message.headers["id"], **fields)


class BatchStats(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step whose only part is its line in the worker's `stats` reply (what
    `quota-worker status` reads): the batches of this worker's consumer."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def info(self, c: Any) -> dict[str, Any]:
        batcher = getattr(c, "batcher", None)
        return {"quota_batches": batcher.stats() if batcher is not None else {"batch_max": 1}}


def kwargs_of(message: Any) -> dict[str, Any] | None:
    """A message's keyword arguments; None if its body is not Celery's (args, kwargs,
    embed) with no args (the one-by-one path tells what is wrong with it)."""
    try:
        args, kwargs, _embed = loads(message.body, message.content_type,
                                     message.content_encoding, accept={message.content_type})  # type: ignore[no-untyped-call]  # fmt: skip
    except Exception:  # anything a payload provokes is the payload's fault
        return None
    return kwargs if isinstance(kwargs, dict) and not args else None


def subject_of(kwargs: dict[str, Any] | None) -> str | None:
    """The Service Mail a message is about, else its order; None if it says neither."""
    subject = (kwargs or {}).get("service_mail_id") or (kwargs or {}).get("order_id")
    return subject if isinstance(subject, str) else None

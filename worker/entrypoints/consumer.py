"""The worker's consumer: every delivered message passes the envelope checks first.

`QuotaConsumer.create_task_handler` wraps Celery's own handler of a
delivered task message. Before Celery builds a request (let alone sends it to
a pool process), `worker.entrypoints.envelope.check` decides from the envelope alone
whether the message may run; a refused one is stored as a dead letter
(`invalid_message: <why>`) in this process and acknowledged once that is
committed, so it costs no pool process, no retry and no restart. Whatever
Celery or kombu still cannot handle (a decode error, an unknown task, an
exception of their own) ends the same way: nothing is dropped, nothing stops
the consumer. A pickle, yaml or msgpack body is stored as it came (base64 if
not UTF-8) and never deserialized.

`QuotaConsumer` subclasses Celery's internal worker `Consumer`: importing this
module refuses a Celery version it was not tested with (`worker.adapters.versions`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from celery import signals
from celery.worker.consumer import Consumer

from worker.adapters import deliveries, versions
from worker.adapters.deliveries import StoredBody
from worker.entrypoints import envelope
from worker.entrypoints.app import batch_max, container_of
from worker.entrypoints.batching import Batcher, batchable
from worker.service.bus import MessageBus

versions.check("celery")

log = structlog.get_logger(__name__)

# A dead letter that cannot be written (the database is away): wait, then put the
# message back for another try, rather than spin on it.
UNREACHABLE_PAUSE_SECONDS = 1.0


class QuotaConsumer(Consumer):  # type: ignore[misc]
    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], None]:
        celery_handler = super().create_task_handler(*args, **kwargs)
        container = container_of(self.app)
        max_bytes = container.settings.max_message_bytes

        def one_by_one(message: Any) -> None:
            try:
                celery_handler(message)
            except Exception as exc:
                log.exception("celery_could_not_take_message")
                why = f"Celery could not take it ({type(exc).__name__}: {exc})"[:500]
                refuse(message, why, container.bus)

        size = batch_max(container.settings)
        batcher = None
        if size > 1 and not _calls_back_on_the_loop(self.pool):
            log.warning(
                "batching_off_for_this_pool",
                pool=type(self.pool).__module__,
                batch_max=size,
                why="batches need a pool that calls back on the consumer's event loop "
                "(prefork or solo); each message gets its own transaction",
            )
            size = 1
        if size > 1:
            slots = getattr(self.pool, "num_processes", None) or self.pool.limit or 1
            batcher = Batcher(
                self.pool,
                one_by_one,
                self.event_dispatcher,
                batch_max=size,
                slots=slots,
                defer=self.hub.call_soon if self.hub is not None else None,
            )
        self.batcher = batcher  # read by the BatchStats step (worker/entrypoints/batching.py)

        def on_task_received(message: Any) -> None:
            try:
                refusal = envelope.check(_delivery(message), max_bytes=max_bytes, now=_now())
            except Exception as exc:  # a check must never be what stops the consumer
                log.exception("envelope_check_failed")
                refusal = f"its envelope could not be read ({type(exc).__name__})"
            if refusal is not None:
                refuse(message, refusal, container.bus)
                return
            queue = message.delivery_info[deliveries.QUEUE_KEY]
            envelope.ignore_hints(message.headers, message.properties, queue)
            if batcher is not None and batchable(message):
                batcher.add(message)
            else:
                one_by_one(message)

        return _never_raises(on_task_received)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        refuse(message, f"refused content type {message.content_type!r}: {exc}", self._bus())

    def on_unknown_message(self, body: Any, message: Any) -> None:
        refuse(message, "not a Celery task message (no task name)", self._bus())

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        refuse(message, f"unknown task: {exc}", self._bus())

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        refuse(message, f"invalid task message: {exc}", self._bus())

    def _bus(self) -> MessageBus:
        return container_of(self.app).bus


def _calls_back_on_the_loop(pool: Any) -> bool:
    """Prefork calls back from its result handler on the consumer's event loop, solo at
    once; the thread pool (and gevent, eventlet) from its own threads or greenlets."""
    return type(pool).__module__ in ("celery.concurrency.prefork", "celery.concurrency.solo")


def _never_raises(handler: Callable[[Any], None]) -> Callable[[Any], None]:
    """An exception out of the handler would stop the consumer (and the message would come
    back and stop it again): log it and take the message off the queue instead."""

    def guarded(message: Any) -> None:
        try:
            handler(message)
        except Exception:
            log.exception("message_handling_failed_discarded")
            if not message.acknowledged:
                message.reject(requeue=False)

    return guarded


def _now() -> datetime:
    return datetime.now(UTC)


def _delivery(message: Any) -> envelope.Delivery:
    body = message.body
    return envelope.Delivery(
        headers=message.headers,
        properties=message.properties or {},
        delivery_info=message.delivery_info or {},
        body=body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
    )


def _clean(value: object) -> str | None:
    """A header value fit to store as a key, else None."""
    return value if envelope.well_formed(value) else None


def refuse(message: Any, reason: str, bus: MessageBus) -> None:
    """Keep a refused message as a dead letter, then acknowledge it (never before)."""
    headers = message.headers if isinstance(message.headers, Mapping) else {}
    raw = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    stored = deliveries.stored_body(message.properties or {}, raw)
    message_id, task = _clean(headers.get("id")), _clean(headers.get("task"))
    if message_id is None and headers.get("id") is not None:
        reason += f" (id {ascii(headers.get('id'))[:100]})"
    content_type = message.content_type if isinstance(message.content_type, str) else None
    try:
        bus.dead_letter(
            message_id=message_id,
            task=task,
            body=stored,
            error=f"invalid_message: {reason}",
            content_type=content_type[:255] if content_type else None,
        )
    except Exception:
        log.exception("dead_letter_unreachable_requeued", error=reason)
        time.sleep(UNREACHABLE_PAUSE_SECONDS)
        if not message.acknowledged:
            message.reject(requeue=True)
        return
    if not message.acknowledged:
        message.ack()


@signals.task_failure.connect
def _keep_failed(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    **_: Any,
) -> None:
    """A task that failed outside its own handling (time limit, lost worker past its retries)."""
    body = json.dumps({"args": list(args or ()), "kwargs": kwargs or {}}, default=repr)
    container_of(sender.app).bus.dead_letter(
        message_id=task_id,
        task=getattr(sender, "name", None),
        body=StoredBody.of(body),
        error=f"task failed: {type(exception).__name__}: {exception}",
    )

"""Thin tasks: parse the payload, hand a command to the bus, decide what is retried."""

from __future__ import annotations

import json
import random
from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject
from pydantic import TypeAdapter, ValidationError
from structlog.contextvars import bound_contextvars

from domain import commands, errors
from events.inbound import INBOUND, Identifier, describe
from events.translate import to_command
from worker.adapters import db
from worker.adapters.deliveries import RETRY_QUEUE
from worker.bootstrap import container
from worker.entrypoints.app import MAX_RETRY_COUNTDOWN, app
from worker.ops.metrics import MESSAGES
from worker.service.outcomes import Outcome

log = structlog.get_logger(__name__)


def transient(exc: BaseException) -> bool:
    """Worth another try: a transient database error (its adapter says which), or the
    broker or stream briefly away."""
    return db.transient(exc) or isinstance(exc, ConnectionError | TimeoutError)


MAX_RETRIES = 8
_CONTEXT_KEYS = ("request_id", "order_id", "payment_id", "service_mail_id")


def handle_inbound(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    context = {k: v for k, v in kwargs.items() if k in _CONTEXT_KEYS and _readable_id(v)}
    with bound_contextvars(task=task.name, message_id=task.request.id, **context):
        try:
            outcome = _process(task, args, kwargs)
        except Exception as exc:
            if transient(exc):
                outcome = _retry_or_give_up(task, args, kwargs, exc)
            else:  # a bug must not lose the message: keep it for an operator
                log.exception("message_failed")
                outcome = _dead_letter(
                    task, args, kwargs, f"unexpected {type(exc).__name__}: {exc}"
                )
        MESSAGES.labels(task.name, outcome.kind.value).inc()
        log.info("message_processed", outcome=str(outcome))
        return str(outcome)


def _process(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Outcome:
    if args:
        return _invalid(
            task, args, kwargs, "positional arguments are refused: send keyword arguments"
        )
    schema = INBOUND[task.name][1]
    try:
        command = to_command(schema.model_validate(kwargs))
    except ValidationError as exc:
        return _invalid(task, args, kwargs, describe(exc))
    except Exception as exc:  # anything a payload provokes is the payload's fault
        return _invalid(task, args, kwargs, f"unreadable payload ({type(exc).__name__})")
    try:
        return container().bus.handle(command, message_id=task.request.id, task=task.name)
    except errors.InvalidMessage as exc:
        return _invalid(task, args, kwargs, exc.detail)


def _retry_or_give_up(
    task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception
) -> Outcome:
    retries = task.request.retries or 0
    if retries < MAX_RETRIES:
        countdown = min(MAX_RETRY_COUNTDOWN, 0.5 * 2**retries) * random.uniform(0.8, 1.2)
        log.warning(
            "transient_error_retrying", error=str(exc), retries=retries, countdown=countdown
        )
        # Onto the worker's own queue: a producer's message never carries an eta.
        raise task.retry(exc=exc, countdown=countdown, max_retries=MAX_RETRIES, queue=RETRY_QUEUE)
    try:
        return _dead_letter(task, args, kwargs, f"gave up after {retries} retries: {exc}")
    except Exception as again:
        if not transient(again):
            raise
        # Not even the dead-letter table can be reached: put the message back.
        log.error("dead_letter_unreachable_requeued", error=str(again))
        raise Reject(again, requeue=True) from again


def _invalid(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], detail: str) -> Outcome:
    rejection = None
    if task.name == "quota.request_change" and all(
        _readable_id(kwargs.get(k)) for k in ("request_id", "order_id", "service_mail_id")
    ):
        rejection = commands.RejectInvalidMessage(
            request_id=kwargs["request_id"],
            order_id=kwargs["order_id"],
            service_mail_id=kwargs["service_mail_id"],
            detail=f"The request breaks the message contract: {detail}",
        )
    return _dead_letter(task, args, kwargs, f"invalid_message: {detail}", rejection)


def _dead_letter(
    task: Task,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: str,
    rejection: commands.RejectInvalidMessage | None = None,
) -> Outcome:
    body = json.dumps({"args": list(args), "kwargs": kwargs}, default=repr, ensure_ascii=False)
    return container().bus.dead_letter(
        message_id=task.request.id, task=task.name, body=body, error=error, rejection=rejection
    )


_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


def _readable_id(value: object) -> bool:
    try:
        _IDENTIFIER.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def _register(name: str) -> Task:
    def run(self: Task, *args: Any, **kwargs: Any) -> str:
        return handle_inbound(self, args, kwargs)

    run.__name__ = run.__qualname__ = name.replace(".", "_")
    return app.task(
        name=name,
        bind=True,
        max_retries=MAX_RETRIES,
        default_retry_delay=2,  # the countdown of a retry after a lost worker
    )(run)


TASKS = {name: _register(name) for name in INBOUND}

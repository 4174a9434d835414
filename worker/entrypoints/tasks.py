"""The tasks: one per inbound message of the contract. Each parses its payload, hands the
command to the bus, and decides what a failure becomes (`after_failure`)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from celery import Task, shared_task
from celery.exceptions import Reject
from pydantic import TypeAdapter, ValidationError
from structlog.contextvars import bound_contextvars

from domain import commands, errors
from events.inbound import INBOUND, Identifier, describe
from events.translate import to_command
from worker.adapters import db
from worker.adapters.deliveries import RETRY_QUEUE
from worker.entrypoints.app import MAX_RETRY_COUNTDOWN, container_of
from worker.ops.metrics import MESSAGES
from worker.service.bus import MessageBus
from worker.service.outcomes import Outcome

log = structlog.get_logger(__name__)

MAX_RETRIES = 8


def _inbound(name: str) -> Callable[[Callable[..., str]], Task]:
    """The task of the contract's message `name`, on every app `create_app` makes."""
    return cast(
        Callable[[Callable[..., str]], Task],
        shared_task(
            name=name,
            bind=True,
            max_retries=MAX_RETRIES,
            default_retry_delay=2,  # the countdown of a retry after a lost worker
        ),
    )


@_inbound("quota.request_change")
def request_change(self: Task, *args: Any, **kwargs: Any) -> str:
    return handle_inbound(self, args, kwargs, container_of(self.app).bus)


@_inbound("quota.cancel_change")
def cancel_change(self: Task, *args: Any, **kwargs: Any) -> str:
    return handle_inbound(self, args, kwargs, container_of(self.app).bus)


@_inbound("quota.payment_confirmed")
def payment_confirmed(self: Task, *args: Any, **kwargs: Any) -> str:
    return handle_inbound(self, args, kwargs, container_of(self.app).bus)


@_inbound("mail.service_provisioned")
def service_provisioned(self: Task, *args: Any, **kwargs: Any) -> str:
    return handle_inbound(self, args, kwargs, container_of(self.app).bus)


@_inbound("mail.address_created")
def address_created(self: Task, *args: Any, **kwargs: Any) -> str:
    return handle_inbound(self, args, kwargs, container_of(self.app).bus)


@_inbound("mail.address_deleted")
def address_deleted(self: Task, *args: Any, **kwargs: Any) -> str:
    return handle_inbound(self, args, kwargs, container_of(self.app).bus)


@_inbound("mail.addresses_snapshot")
def addresses_snapshot(self: Task, *args: Any, **kwargs: Any) -> str:
    return handle_inbound(self, args, kwargs, container_of(self.app).bus)


def transient(exc: BaseException) -> bool:
    """Worth another try: a transient database error (its adapter says which), or the
    broker or stream briefly away."""
    return db.transient(exc) or isinstance(exc, ConnectionError | TimeoutError)


@dataclass(frozen=True)
class RetryLater:
    countdown: float


@dataclass(frozen=True)
class DeadLetter:
    error: str


def after_failure(
    exc: Exception, retries: int, jitter: Callable[[float, float], float] = random.uniform
) -> RetryLater | DeadLetter:
    """A transient error is retried with a growing countdown (0.5 s doubling, at most
    MAX_RETRY_COUNTDOWN, ±20%) up to MAX_RETRIES times, then kept as a dead letter; any
    other error is a bug, kept at once: a bug must not lose the message."""
    if not transient(exc):
        return DeadLetter(f"unexpected {type(exc).__name__}: {exc}")
    if retries < MAX_RETRIES:
        return RetryLater(min(MAX_RETRY_COUNTDOWN, 0.5 * 2**retries) * jitter(0.8, 1.2))
    return DeadLetter(f"gave up after {retries} retries: {exc}")


_CONTEXT_KEYS = ("request_id", "order_id", "payment_id", "service_mail_id")


def handle_inbound(
    task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], bus: MessageBus
) -> str:
    context = {k: v for k, v in kwargs.items() if k in _CONTEXT_KEYS and _readable_id(v)}
    with bound_contextvars(task=task.name, message_id=task.request.id, **context):
        try:
            outcome = _process(task, args, kwargs, bus)
        except Exception as exc:
            decision = after_failure(exc, task.request.retries or 0)
            if isinstance(decision, RetryLater):
                log.warning(
                    "transient_error_retrying",
                    error=str(exc),
                    retries=task.request.retries or 0,
                    countdown=decision.countdown,
                )
                # Onto the worker's own queue: a producer's message never carries an eta.
                raise task.retry(
                    exc=exc,
                    countdown=decision.countdown,
                    max_retries=MAX_RETRIES,
                    queue=RETRY_QUEUE,
                ) from exc
            if not transient(exc):
                log.exception("message_failed")
            outcome = _keep(task, args, kwargs, decision.error, bus)
        record(task.name, outcome)
        return str(outcome)


def record(task: str, outcome: Outcome, **extra: Any) -> None:
    """A handled message's metric and log line (one per message, batched or not)."""
    MESSAGES.labels(task, outcome.kind.value).inc()
    log.info("message_processed", outcome=str(outcome), **extra)


def _process(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], bus: MessageBus) -> Outcome:
    if args:
        detail = "positional arguments are refused: send keyword arguments"
        return _invalid(task, args, kwargs, detail, bus)
    try:
        command = to_command(INBOUND[task.name].model.model_validate(kwargs))
    except ValidationError as exc:
        return _invalid(task, args, kwargs, describe(exc), bus)
    except Exception as exc:  # anything a payload provokes is the payload's fault
        return _invalid(task, args, kwargs, f"unreadable payload ({type(exc).__name__})", bus)
    try:
        return bus.handle(command, message_id=task.request.id, task=task.name)
    except errors.InvalidMessage as exc:
        return _invalid(task, args, kwargs, exc.detail, bus)
    except errors.PaymentIdConflict as exc:
        return _dead_letter(task, args, kwargs, f"{exc.reason}: {exc.detail}", bus)


def _keep(
    task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], error: str, bus: MessageBus
) -> Outcome:
    """A dead letter; if even that cannot be written (the database away), the message
    goes back to its queue."""
    try:
        return _dead_letter(task, args, kwargs, error, bus)
    except Exception as again:
        if not transient(again):
            raise
        log.error("dead_letter_unreachable_requeued", error=str(again))
        raise Reject(again, requeue=True) from again


def _invalid(
    task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], detail: str, bus: MessageBus
) -> Outcome:
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
    return _dead_letter(task, args, kwargs, f"invalid_message: {detail}", bus, rejection)


def _dead_letter(
    task: Task,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: str,
    bus: MessageBus,
    rejection: commands.RejectInvalidMessage | None = None,
) -> Outcome:
    body = json.dumps({"args": list(args), "kwargs": kwargs}, default=repr, ensure_ascii=False)
    return bus.dead_letter(
        message_id=task.request.id, task=task.name, body=body, error=error, rejection=rejection
    )


_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


def _readable_id(value: object) -> bool:
    try:
        _IDENTIFIER.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True

"""The worker's consumer, taught to keep what it cannot decode as a dead letter.

Celery acknowledges (and so drops) a message in a refused serializer, for an
unknown task or of a broken shape, after logging it. The contract says
nothing is dropped: each is stored with its raw body first. A pickle body
is stored as bytes (base64) and never deserialized.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import structlog
from celery import signals
from celery.worker.consumer import Consumer

from worker.bootstrap import container

log = structlog.get_logger(__name__)


class QuotaConsumer(Consumer):  # type: ignore[misc]
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        _keep(message, f"refused content type {message.content_type!r}: {exc}")
        message.ack()

    def on_unknown_message(self, body: Any, message: Any) -> None:
        _keep(message, "not a Celery task message (no task name)")
        message.ack()

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        _keep(message, f"unknown task: {exc}")
        message.ack()

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        _keep(message, f"invalid task message: {exc}")
        message.ack()


def _keep(message: Any, error: str) -> None:
    headers = message.headers or {}
    raw = message.body
    if isinstance(raw, bytes):
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = "base64:" + base64.b64encode(raw).decode("ascii")
    else:
        body = str(raw)
    task = headers.get("task")
    container().bus.dead_letter(
        message_id=headers.get("id"),
        task=task if isinstance(task, str) else None,
        body=body,
        error=error,
        content_type=message.content_type,
    )


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
    container().bus.dead_letter(
        message_id=task_id,
        task=getattr(sender, "name", None),
        body=body,
        error=f"task failed: {type(exception).__name__}: {exception}",
    )

"""Dead letters for operators: list and read them, replay one through the normal path, discard."""

from __future__ import annotations

import json
from typing import Any

from celery import Celery
from sqlalchemy import select, update

from events.inbound import INBOUND
from worker.adapters import tables as t
from worker.adapters.deliveries import STORED_BODY_BYTES
from worker.bootstrap import Container, utcnow


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


class AlreadyHandled(Exception):
    """Discarding a letter that is gone, or replayed or discarded meanwhile."""


def _refusal(container: Container, letter_id: int) -> str:
    """Why a letter is not (or no longer) stored, as the conditional update found it."""
    letter = get_dead_letter(container, letter_id)
    if letter is None:
        return f"no dead letter {letter_id}"
    if letter["status"] == "discarded":
        return f"dead letter {letter_id} was discarded: {letter['resolution']}"
    return f"dead letter {letter_id} is already {letter['status']}: {letter['resolution']}"


def replay_dead_letter(
    container: Container, app: Celery, letter_id: int, actor: str | None = None
) -> str:
    """Publish the stored message again through the normal path; returns its message id.

    The message id is derived from the dead letter, so replaying twice is a no-op
    for the worker (it has processed that id), and the row records the replay (and who
    asked for it, as a discard records its `actor`). The letter is claimed before it is
    sent, by an update conditional on its status: of a replay and a discard at the same
    time exactly one wins, and a discarded letter is never sent.
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
    resolution = f"replayed as {message_id}"
    if actor is not None:
        resolution = f"{actor}: {resolution}"
    # A replayed letter may be replayed again (the worker runs its message id once).
    if not _resolve(container, letter_id, ("stored", "replayed"), "replayed", resolution,
                    message_id):  # fmt: skip
        raise NotReplayable(_refusal(container, letter_id))
    try:
        app.send_task(task, args=args, kwargs=kwargs, queue=INBOUND[task].queue, task_id=message_id)
    except Exception:
        if letter["status"] == "stored":  # not sent: it waits for an operator again
            _resolve(container, letter_id, ("replayed",), "stored", None, None)
        raise
    return message_id


def discard_dead_letter(container: Container, letter_id: int, reason: str, actor: str) -> bool:
    """Mark a stored letter as handled; AlreadyHandled if it is unknown, or was replayed or
    discarded meanwhile (the update is conditional on its status: one of two wins)."""
    if not _resolve(container, letter_id, ("stored",), "discarded", f"{actor}: {reason}", None):
        raise AlreadyHandled(_refusal(container, letter_id))
    return True


def _resolve(
    container: Container,
    letter_id: int,
    was: tuple[str, ...],
    status: str,
    resolution: str | None,
    replayed_as: str | None,
) -> bool:
    """Move a letter whose status is one of `was` to `status`; False if none was."""
    c = t.dead_letters.c
    resolved_at = None if status == "stored" else utcnow()
    with container.database.engine.begin() as conn:
        result = conn.execute(
            update(t.dead_letters)
            .where(c.id == letter_id, c.status.in_(was))
            .values(
                status=status,
                resolution=resolution,
                replayed_as=replayed_as,
                resolved_at=resolved_at,
            )
        )
    return result.rowcount > 0

"""The message bus: runs a command's handler in its unit of work, exactly once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from domain import commands
from worker.adapters.deliveries import StoredBody
from worker.service import handlers
from worker.service.handlers import Deps
from worker.service.outcomes import DEAD_LETTER, DUPLICATE_DELIVERY, Kind, Outcome
from worker.service.repository import Processed
from worker.service.uow import UnitOfWork

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Inbound:
    """A batch's message: its command, its id (the processed-message key) and its task."""

    command: commands.Command
    message_id: str
    task: str


class Redelivered(Exception):
    """A batch lost to a redelivery of one of its messages committed meanwhile."""


@dataclass(frozen=True)
class SweepResult:
    expired: int
    refunded: int
    decided: int = 0  # requests that waited for their Service Mail


class MessageBus:
    def __init__(self, uow_factory: Callable[[], UnitOfWork], deps: Deps) -> None:
        self.uow_factory = uow_factory
        self.deps = deps

    def handle(self, cmd: commands.Command, *, message_id: str | None, task: str) -> Outcome:
        handler = handlers.HANDLERS[type(cmd)]
        # A redelivered message is recognised by its id when its processed row is
        # written, in the same commit: no lookup before the handler (one round trip
        # less per message); a duplicate's work is rolled back.
        with self.uow_factory() as uow:
            uow.message_id = message_id
            outcome = handler(cmd, uow, self.deps)
            committed = uow.commit(
                self.deps.now(),
                message_id=message_id,
                task=task,
                outcome=str(outcome),
                order_id=getattr(cmd, "order_id", None),
            )
        return outcome if committed else DUPLICATE_DELIVERY

    def handle_batch(self, messages: Sequence[Inbound]) -> list[Outcome]:
        """Several messages in one transaction, each handled and recorded as if alone (its
        outcome, processed id, transitions, events), in the order given. The batch's
        locks are taken first in one global order; a message processed already is
        recognised in one read and skipped. Any failure (a handler's or the commit's,
        a redelivery that raced this batch included) rolls back the whole batch and is
        raised: the caller then handles its messages one by one."""
        ids = [m.message_id for m in messages]
        if len(set(ids)) != len(ids):
            raise ValueError("a batch holds each message once")
        with self.uow_factory() as uow:
            done = uow.repo.processed_among(ids)
            todo = [m for m in messages if m.message_id not in done]
            uow.repo.lock_in_order(
                [o for m in todo if (o := getattr(m.command, "order_id", None))],
                [s for m in todo if (s := getattr(m.command, "service_mail_id", None))],
            )
            outcomes = {}
            for m in todo:
                uow.message_id = m.message_id
                outcome = handlers.HANDLERS[type(m.command)](m.command, uow, self.deps)
                order_id = getattr(m.command, "order_id", None)
                uow.stage(self.deps.now(), Processed(m.message_id, m.task, str(outcome), order_id))
                outcomes[m.message_id] = outcome
            if not uow.commit(self.deps.now()):
                raise Redelivered("a message of the batch was processed meanwhile")
        return [outcomes.get(i, DUPLICATE_DELIVERY) for i in ids]

    def dead_letter(
        self,
        *,
        message_id: str | None,
        task: str | None,
        body: StoredBody | str,
        error: str,
        content_type: str | None = "application/json",
        rejection: commands.RejectInvalidMessage | None = None,
    ) -> Outcome:
        """Keep a message that cannot be processed, and refuse its change where ids are known."""
        with self.uow_factory() as uow:
            uow.message_id = message_id
            if message_id is not None and uow.repo.is_processed(message_id):
                return DUPLICATE_DELIVERY
            now = self.deps.now()
            uow.repo.add_dead_letter(
                message_id=message_id,
                task=task,
                body=body if isinstance(body, StoredBody) else StoredBody.of(body),
                content_type=content_type,
                error=error,
                now=now,
            )
            if rejection is not None:
                handlers.reject_invalid(rejection, uow, self.deps)
            uow.commit(
                now,
                message_id=message_id,
                task=task or "",
                outcome=str(DEAD_LETTER),
                order_id=rejection.order_id if rejection else None,
            )
        log.warning("dead_lettered", error=error, dead_letter_task=task)
        return DEAD_LETTER

    def as_operator(
        self,
        actor: str,
        cmd: commands.CancelQuotaChange | None = None,
        *,
        expire: tuple[str, str, str] | None = None,
    ) -> bool:
        """An operator's cancel or expiry: the automatic path's events, recorded as `actor`."""
        with self.uow_factory() as uow:
            uow.message_id = actor
            if cmd is not None:
                done = handlers.cancel_change(cmd, uow, self.deps).kind is Kind.CANCELLED
            else:
                assert expire is not None
                request_id, order_id, reason = expire
                done = handlers.expire_change(request_id, order_id, uow, self.deps, reason)
            uow.commit(self.deps.now())
        return done

    def sweep(self, batch: int = 500) -> SweepResult:
        """Decide requests that waited for their Service Mail past its grace (or that it
        meanwhile came for), expire changes past their deadline and its grace, and refund
        payments no order claimed."""
        expired = refunded = decided = 0
        while True:
            now = self.deps.now()
            with self.uow_factory() as uow:
                waiting = uow.repo.unprovisioned_changes(now, batch)
                due = uow.repo.due_changes(now - self.deps.expiry_grace, batch)
                unmatched = uow.repo.unmatched_payments(now - self.deps.payment_timeout, batch)
            decided += sum(self._one(handlers.decide_received, *ids) for ids in waiting)
            expired += sum(self._one(handlers.expire_change, *ids) for ids in due)
            refunded += sum(self._one(handlers.refund_unmatched_payment, *ids) for ids in unmatched)
            if max(len(waiting), len(due), len(unmatched)) < batch:
                break
        if expired or refunded or decided:
            log.info("sweep", expired=expired, refunded=refunded, decided=decided)
        return SweepResult(expired, refunded, decided)

    def _one(
        self, step: Callable[[str, str, UnitOfWork, Deps], bool], key: str, order: str
    ) -> bool:
        with self.uow_factory() as uow:
            done = step(key, order, uow, self.deps)
            uow.commit(self.deps.now())
        return done

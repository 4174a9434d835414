"""Drives the real bus and reads back what it stored: a test's view of one database."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from domain import commands
from tests.helpers import new_id
from worker.adapters import tables as t
from worker.bootstrap import Container


@dataclass
class Shop:
    app: Container
    sent: list[str] = field(default_factory=list)

    def send(self, cmd: commands.Command, message_id: str | None = None) -> str:
        message_id = message_id or str(uuid.uuid4())
        self.sent.append(message_id)
        return str(self.app.bus.handle(cmd, message_id=message_id, task="test"))

    def provision(
        self, *, plan: str = "premium", limit: int = 10, ksuite_id: str | None = None
    ) -> tuple[str, str]:
        mail, account = new_id("sm"), new_id("acc")
        self.send(commands.ProvisionServiceMail(mail, account, plan, limit, ksuite_id))
        return mail, account

    def request(
        self,
        mail: str,
        account: str,
        *,
        expected: int,
        new: int,
        amount: int = 1500,
        currency: str = "CHF",
        request_id: str | None = None,
        order_id: str | None = None,
    ) -> commands.RequestQuotaChange:
        return commands.RequestQuotaChange(
            request_id=request_id or new_id("req"),
            order_id=order_id or new_id("ord"),
            account_id=account,
            service_mail_id=mail,
            expected_address_limit=expected,
            new_address_limit=new,
            amount_due=amount,
            currency=currency,
            requested_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        )

    def payment(
        self, order_id: str, amount: int = 1500, currency: str = "CHF"
    ) -> commands.ConfirmPayment:
        return commands.ConfirmPayment(
            new_id("pay"), order_id, amount, currency, datetime(2026, 11, 24, 9, 5, tzinfo=UTC)
        )

    def add_addresses(self, mail: str, count: int) -> None:
        for n in range(count):
            self.send(commands.RecordAddressCreated(mail, f"user{n}@example.ch"))

    # -- reading back ----------------------------------------------------
    def _rows(self, query: Any) -> list[Any]:
        with self.app.database.engine.connect() as conn:
            return list(conn.execute(query))

    def mail(self, mail_id: str) -> Any:
        return self._rows(select(t.service_mails).where(t.service_mails.c.id == mail_id))[0]

    def change(self, order_id: str) -> Any:
        rows = self._rows(select(t.quota_changes).where(t.quota_changes.c.order_id == order_id))
        return rows[0] if rows else None

    def payment_row(self, payment_id: str) -> Any:
        return self._rows(select(t.payments).where(t.payments.c.payment_id == payment_id))[0]

    def history(self, mail_id: str) -> list[Any]:
        return self._rows(
            select(t.limit_history)
            .where(t.limit_history.c.service_mail_id == mail_id)
            .order_by(t.limit_history.c.version)
        )

    def address_count(self, mail_id: str) -> int:
        return len(self._rows(select(t.addresses).where(t.addresses.c.service_mail_id == mail_id)))

    def processed_at(self, message_ids: list[str]) -> dict[str, datetime]:
        """When the bus committed each message, as its clock read inside the transaction."""
        table = t.processed_messages
        rows = self._rows(select(table).where(table.c.message_id.in_(message_ids)))
        return {r.message_id: r.processed_at for r in rows}

    def events(self, **data: Any) -> list[dict[str, Any]]:
        """Outbox events whose data has all the given values, oldest first."""
        bodies = [r.body for r in self._rows(select(t.outbox.c.body).order_by(t.outbox.c.id))]
        events = [json.loads(b) for b in bodies]
        return [e for e in events if all(e["data"].get(k) == v for k, v in data.items())]

    def types(self, **data: Any) -> list[str]:
        return [e["type"] for e in self.events(**data)]

    def dead_letters(self, message_id: str) -> list[Any]:
        return self._rows(select(t.dead_letters).where(t.dead_letters.c.message_id == message_id))

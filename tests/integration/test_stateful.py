"""Hypothesis generates interleavings, duplicates and delays of the contract's messages for a
few Service Mails; the real handlers and unit of work run them on the real database, and
every step is compared with a small model of the rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import text

from domain import commands
from tests.helpers import new_id
from tests.integration.conftest import Clock
from worker.bootstrap import Container, build
from worker.settings import Settings

TIMEOUT = 3600
MIN, MAX = 5, 10000


@dataclass
class MailModel:
    account: str
    limit: int = 10
    addresses: set[str] = field(default_factory=set)
    version: int = 0
    awaiting: str | None = None  # order id


@dataclass
class OrderModel:
    mail: str
    expected: int
    new: int
    amount: int
    state: str = "pending"  # before the request arrives
    payments: list[str] = field(default_factory=list)


class Quotas(RuleBasedStateMachine):
    app: Container
    clock: Clock

    def __init__(self) -> None:
        super().__init__()
        self.mails: dict[str, MailModel] = {}
        self.orders: dict[str, OrderModel] = {}
        self.decided_payments: dict[str, str] = {}  # payment -> used | refunded
        self.held: dict[str, tuple[str, int]] = {}  # payment -> (order, amount), before its request
        self.sent: list[tuple[commands.Command, str]] = []

    def send(self, cmd: commands.Command, message_id: str | None = None) -> str:
        message_id = message_id or str(uuid.uuid4())
        self.sent.append((cmd, message_id))
        return str(self.app.bus.handle(cmd, message_id=message_id, task="stateful"))

    # -- rules ---------------------------------------------------------------
    @precondition(lambda self: len(self.mails) < 3)  # few mails: their orders collide
    @rule()
    def provision(self) -> None:
        mail, account = new_id("st-sm"), new_id("st-acc")
        self.mails[mail] = MailModel(account)
        assert (
            self.send(commands.ProvisionServiceMail(mail, account, "premium", 10, None))
            == "created"
        )

    @precondition(lambda self: self.mails)
    @rule(data=st.data())
    def address(self, data: st.DataObject) -> None:
        mail = data.draw(st.sampled_from(sorted(self.mails)))
        if data.draw(st.booleans()):
            # Several at once, so a Service Mail soon holds more addresses than a decrease allows.
            for n in data.draw(st.lists(st.integers(0, 12), min_size=1, max_size=6)):
                self.send(commands.RecordAddressCreated(mail, f"u{n}@x.ch"))
                self.mails[mail].addresses.add(f"u{n}@x.ch")
        else:
            address = f"u{data.draw(st.integers(0, 12))}@x.ch"
            self.send(commands.RecordAddressDeleted(mail, address))
            self.mails[mail].addresses.discard(address)

    @precondition(lambda self: self.mails)
    @rule(data=st.data())
    def request(self, data: st.DataObject) -> None:
        mail_id = data.draw(st.sampled_from(sorted(self.mails)))
        mail = self.mails[mail_id]
        stale = data.draw(st.integers(0, 3)) == 0
        expected = mail.limit + (1 if stale else 0)
        new = data.draw(st.integers(1, 14))
        amount = data.draw(st.sampled_from([0, 500]))
        order_id = data.draw(st.sampled_from([new_id("st-ord"), *self.held_orders()]))
        order = OrderModel(mail_id, expected, new, amount)
        self.orders[order_id] = order
        cmd = commands.RequestQuotaChange(
            new_id("st-req"), order_id, mail.account, mail_id, expected, new, amount, "CHF",
            datetime(2026, 11, 24, tzinfo=UTC),
        )  # fmt: skip
        self.send(cmd)
        ok = (
            mail.awaiting is None
            and new != mail.limit
            and expected == mail.limit
            and MIN <= new <= MAX
            and new >= len(mail.addresses)
        )
        if not ok:
            order.state = "rejected"
        elif amount == 0:
            self._apply(order_id)
        else:
            order.state, mail.awaiting = "awaiting_payment", order_id
        for payment_id, (paid_order, paid) in list(self.held.items()):
            if paid_order == order_id:
                del self.held[payment_id]
                self._pay(order_id, payment_id, paid)

    def held_orders(self) -> list[str]:
        return sorted({o for o, _ in self.held.values()} - set(self.orders))

    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        known = sorted(self.orders)
        order_id = data.draw(st.sampled_from([new_id("st-early"), *known]))
        paid = data.draw(st.sampled_from([500, 499]))
        payment_id = new_id("st-pay")
        self.send(
            commands.ConfirmPayment(
                payment_id, order_id, paid, "CHF", datetime(2026, 11, 24, tzinfo=UTC)
            )
        )
        if order_id in self.orders:
            self._pay(order_id, payment_id, paid)
        else:
            self.held[payment_id] = (order_id, paid)

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.orders)))
        self.send(commands.CancelQuotaChange(order_id, "cart left"))
        order = self.orders[order_id]
        if order.state == "awaiting_payment":
            order.state = "cancelled"
            self.mails[order.mail].awaiting = None

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        cmd, message_id = data.draw(st.sampled_from(self.sent))
        assert (
            str(self.app.bus.handle(cmd, message_id=message_id, task="stateful"))
            == "duplicate_delivery"
        )

    @rule()
    def time_passes(self) -> None:
        self.clock.advance(seconds=TIMEOUT + 1)
        self.app.bus.sweep()
        for order in self.orders.values():
            if order.state == "awaiting_payment":
                order.state = "expired"
                self.mails[order.mail].awaiting = None
        for payment_id in list(self.held):
            del self.held[payment_id]
            self.decided_payments[payment_id] = "refunded"

    # -- the model's rules ------------------------------------------------------
    def _pay(self, order_id: str, payment_id: str, paid: int) -> None:
        order = self.orders[order_id]
        mail = self.mails[order.mail]
        if order.state != "awaiting_payment":
            self.decided_payments[payment_id] = "refunded"
            return
        mail.awaiting = None
        if paid != order.amount or order.new < len(mail.addresses):
            order.state = "rejected"
            self.decided_payments[payment_id] = "refunded"
        else:
            self._apply(order_id)
            self.decided_payments[payment_id] = "used"

    def _apply(self, order_id: str) -> None:
        order = self.orders[order_id]
        mail = self.mails[order.mail]
        mail.limit, mail.version = order.new, mail.version + 1
        order.state = "applied"

    # -- compared with the database after every step -------------------------------
    def _db(self, sql: str, **params: Any) -> list[Any]:
        with self.app.database.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    @invariant()
    def limits_and_versions_match_the_model(self) -> None:
        for mail_id, model in self.mails.items():
            [row] = self._db(
                "SELECT address_limit, version FROM service_mails WHERE id = :m", m=mail_id
            )
            assert (row.address_limit, row.version) == (model.limit, model.version), mail_id

    @invariant()
    def every_order_is_in_the_state_the_model_expects(self) -> None:
        states = {
            r.order_id: r.state
            for r in self._db(
                "SELECT order_id, state FROM quota_changes WHERE order_id LIKE 'st-%'"
            )
        }
        for order_id, model in self.orders.items():
            assert states.get(order_id) == model.state, (order_id, model)

    @invariant()
    def every_payment_is_decided_as_the_model_expects(self) -> None:
        status = {
            r.payment_id: r.status for r in self._db("SELECT payment_id, status FROM payments")
        }
        for payment_id, decision in self.decided_payments.items():
            assert status[payment_id] == decision, payment_id
        for payment_id in self.held:
            assert status[payment_id] == "pending", payment_id


def test_any_interleaving_of_messages_keeps_the_model_and_the_database_in_step(
    services: Any,
) -> None:
    clock = Clock()
    app = build(
        Settings(
            database_url=services.database_url,
            redis_url=services.redis_url,
            broker_url=services.broker_url,
            events_stream=services.stream,
            payment_timeout_seconds=TIMEOUT,
        ),
        now=clock,
    )
    Quotas.app, Quotas.clock = app, clock
    machine = Quotas.TestCase
    machine.settings = settings(
        max_examples=40,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        # No shrinking: replaying steps against a growing database takes minutes;
        # the failing run's steps are printed as they were.
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
    )
    try:
        machine().runTest()
    finally:
        app.database.dispose()

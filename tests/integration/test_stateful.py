"""Hypothesis generates interleavings, duplicates and delays of the contract's messages for a
few Service Mails, under a clock it moves itself and a sweep it runs when it likes; the
real handlers and unit of work run them on the real database, and every step is compared
with a small model of the rules (tests/integration/stateful_model.py).

The state space: provisioning (new Service Mails, and again with another owner, plan or
kSuite, within or outside the plan's bounds), requests before their Service Mail and
its grace, Starter upgrades along the plan chain, early cancels and payments, deletes
before creates, address snapshots (stale or not, before provisioning too), payments with
`paid_at` around `expires_at`, reused payment ids, and redeliveries."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import text

from domain import commands, errors
from tests.helpers import new_id
from tests.integration.conftest import Clock
from tests.integration.stateful_model import (
    EXPIRY_GRACE,
    PLANS,
    PROVISIONING_GRACE,
    TIMEOUT,
    Model,
    Order,
    Pay,
)
from worker.bootstrap import Container, build
from worker.settings import Settings

# Steps of the clock: around the grace periods and the payment timeout.
STEPS = [1, 150, 299, 300, 301, 3300, 3599, 3600, 3601, 3899, 3900, 3901]
LIMITS = [1, 3, 5, 8, 12, 20, 50, 51, 100, 2000]
PROVISIONED = [("starter", 1), ("premium", 10), ("business", 20), ("premium", 60)]
REQUESTED_AT = datetime(2026, 11, 24, tzinfo=UTC)


def _ordered(ids: list[str]) -> list[str]:
    """Without repeats, in the order first seen: the same draws pick the same ids when
    Hypothesis replays an example (sorting generated ids would not)."""
    return list(dict.fromkeys(ids))


class Quotas(RuleBasedStateMachine):
    app: Container
    clock: Clock

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.unknown: dict[str, str] = {}  # mail ids requested before provisioning -> account
        self.accounts: list[str] = []
        self.sent: list[tuple[commands.Command, str]] = []
        self.payment_commands: dict[str, commands.ConfirmPayment] = {}
        self.snapshots: dict[str, datetime] = {}  # the last taken_at applied, by mail id

    @property
    def now(self) -> datetime:
        return self.clock.current

    def send(self, cmd: commands.Command) -> str:
        message_id = str(uuid.uuid4())
        outcome = str(self.app.bus.handle(cmd, message_id=message_id, task="stateful"))
        self.sent.append((cmd, message_id))
        return outcome

    @staticmethod
    def _pick(data: st.DataObject, known: list[str], prefix: str) -> str:
        """One of `known` four times in five, else a new id."""
        if known and data.draw(st.integers(0, 4)) > 0:
            return data.draw(st.sampled_from(known))
        return new_id(prefix)

    def _account(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from([new_id("st-acc"), *self.accounts]))

    # -- provisioning ---------------------------------------------------------------
    @initialize()
    def two_service_mails(self) -> None:
        """A Premium and a Starter to begin with, so that orders meet Service Mails early."""
        for plan, limit in (("premium", 10), ("starter", 1)):
            mail_id, account = new_id("st-sm"), new_id("st-acc")
            self.accounts.append(account)
            cmd = commands.ProvisionServiceMail(mail_id, account, plan, limit, None)
            assert self.send(cmd) == "created"
            self.model.provision(mail_id, account, plan, limit, None, self.now)

    @precondition(lambda self: len(self.model.mails) < 4)  # few mails: their orders collide
    @rule(data=st.data())
    def provision(self, data: st.DataObject) -> None:
        pool = [m for m in self.unknown if m not in self.model.mails]
        mail_id = self._pick(data, pool, "st-sm")
        account = self.unknown.get(mail_id) or new_id("st-acc")
        if data.draw(st.integers(0, 4)) == 0:
            account = self._account(data)  # another than the waiting requests'
        self.accounts.append(account)
        plan, limit = data.draw(st.sampled_from(PROVISIONED))
        ksuite = data.draw(st.sampled_from([*[None] * 7, "st-ks"]))
        cmd = commands.ProvisionServiceMail(mail_id, account, plan, limit, ksuite)
        assert self.send(cmd) == "created"
        self.model.provision(mail_id, account, plan, limit, ksuite, self.now)

    @precondition(lambda self: self.model.mails)
    @rule(data=st.data())
    def provision_again(self, data: st.DataObject) -> None:
        mail_id = data.draw(st.sampled_from(list(self.model.mails)))
        mail = self.model.mails[mail_id]
        account = data.draw(st.sampled_from([mail.account, mail.account, self._account(data)]))
        plan = data.draw(st.sampled_from(list(PLANS)))
        ksuite = data.draw(st.sampled_from([*[None] * 4, "st-ks"]))
        cmd = commands.ProvisionServiceMail(mail_id, account, plan, 999, ksuite)
        assert self.send(cmd) == "updated"
        self.model.provision(mail_id, account, plan, 999, ksuite, self.now)

    @rule(data=st.data())
    def address(self, data: st.DataObject) -> None:
        mail_id = data.draw(st.sampled_from(_ordered([*self.model.mails, *self.unknown, "st-x"])))
        known = self.model.addresses.setdefault(mail_id, set())
        if data.draw(st.booleans()):
            # Several at once, so a Service Mail soon holds more addresses than a decrease allows.
            for n in data.draw(st.lists(st.integers(0, 12), min_size=1, max_size=6)):
                self.send(commands.RecordAddressCreated(mail_id, f"u{n}@x.ch"))
                known.add(f"u{n}@x.ch")
        else:  # often one never created yet: a delete before its create
            address = f"u{data.draw(st.integers(0, 12))}@x.ch"
            self.send(commands.RecordAddressDeleted(mail_id, address))
            known.discard(address)

    @rule(data=st.data())
    def snapshot(self, data: st.DataObject) -> None:
        """The platform's list: a ghost a delete before its create left goes, and one not
        newer than the last applied (taken at one of a few hours) changes nothing."""
        # Not "st-x": shared by every example, its addresses and snapshot outlive the model.
        mail_id = data.draw(st.sampled_from(_ordered([*self.model.mails, *self.unknown])))
        listed = {f"u{n}@x.ch" for n in data.draw(st.lists(st.integers(0, 12), max_size=8))}
        taken_at = REQUESTED_AT + timedelta(hours=data.draw(st.integers(0, 5)))
        outcome = self.send(commands.RecordAddressesSnapshot(mail_id, frozenset(listed), taken_at))
        last = self.snapshots.get(mail_id)
        if last is not None and taken_at <= last:
            assert outcome == "stale"
            return
        known = self.model.addresses.setdefault(mail_id, set())
        assert outcome == f"snapshot_applied:+{len(listed - known)} -{len(known - listed)}"
        self.snapshots[mail_id] = taken_at
        self.model.addresses[mail_id] = listed

    # -- orders -------------------------------------------------------------------------
    @rule(data=st.data())
    def request(self, data: st.DataObject) -> None:
        waiting = [m for m in self.unknown if m not in self.model.mails]
        mail_id = self._pick(data, waiting, "st-sm")  # before its provisioning
        if self.model.mails and data.draw(st.integers(0, 3)) > 0:
            mail_id = data.draw(st.sampled_from(list(self.model.mails)))
        mail = self.model.mails.get(mail_id)
        account = mail.account if mail else self.unknown.setdefault(mail_id, new_id("st-acc"))
        if data.draw(st.integers(0, 5)) == 0:
            account = self._account(data)
        limit = mail.limit if mail else 1
        expected = limit + (1 if data.draw(st.integers(0, 4)) == 0 else 0)
        new = data.draw(st.sampled_from([*LIMITS, limit, limit + 5, limit + 40, limit + 80]))
        amount = data.draw(st.sampled_from([0, 500, 500]))
        pending = [o for o, order in self.model.orders.items() if order.state == "pending"]
        order_id = self._pick(data, pending, "st-ord")
        request_id = new_id("st-req")
        cmd = commands.RequestQuotaChange(
            request_id, order_id, account, mail_id, expected, new, amount, "CHF", REQUESTED_AT
        )
        self.send(cmd)
        order = Order(
            mail=mail_id, account=account, request_id=request_id, expected=expected, new=new,
            amount=amount,
        )  # fmt: skip
        self.model.request(order_id, order, self.now)

    def _free_mails(self) -> list[str]:
        return [m for m, mail in self.model.mails.items() if mail.awaiting is None]

    @precondition(lambda self: self._free_mails())
    @rule(data=st.data())
    def order_a_raise(self, data: st.DataObject) -> None:
        """The usual order: its owner raises the limit of a Service Mail, to pay for (most
        then await payment, which the rules around deadlines need)."""
        mail_id = data.draw(st.sampled_from(self._free_mails()))
        mail = self.model.mails[mail_id]
        new = data.draw(st.sampled_from([mail.limit + 5, mail.limit + 40, 100]))
        order_id, request_id = new_id("st-ord"), new_id("st-req")
        self.send(
            commands.RequestQuotaChange(
                request_id, order_id, mail.account, mail_id, mail.limit, new, 500, "CHF",
                REQUESTED_AT,
            )
        )  # fmt: skip
        order = Order(
            mail=mail_id, account=mail.account, request_id=request_id, expected=mail.limit,
            new=new, amount=500,
        )  # fmt: skip
        self.model.request(order_id, order, self.now)

    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        if self.payment_commands and data.draw(st.integers(0, 5)) == 0:
            self._pay_again(data)
            return
        order_id = self._pick(data, list(self.model.orders), "st-early")
        if self.awaiting() and data.draw(st.booleans()):
            order_id = data.draw(st.sampled_from(self.awaiting()))  # most are for a change
        self._pay(data, order_id, self.now)

    def awaiting(self) -> list[str]:
        return [o for o, order in self.model.orders.items() if order.state == "awaiting_payment"]

    @precondition(lambda self: self.awaiting())
    @rule(data=st.data())
    def pay_around_the_deadline(self, data: st.DataObject) -> None:
        """A change's payment made just before, at or after its expires_at, delivered now,
        however much time has passed."""
        order_id = data.draw(st.sampled_from(self.awaiting()))
        deadline = self.model.orders[order_id].deadline
        assert deadline is not None
        offset = data.draw(st.sampled_from([-1, 0, 1]))  # `pay` covers a payment made now
        paid_at = deadline + timedelta(seconds=offset)
        self._pay(data, order_id, paid_at)

    def _pay(self, data: st.DataObject, order_id: str, paid_at: datetime) -> None:
        amount = data.draw(st.sampled_from([500, 500, 500, 500, 499]))
        cmd = commands.ConfirmPayment(new_id("st-pay"), order_id, amount, "CHF", paid_at)
        self.payment_commands[cmd.payment_id] = cmd
        self.send(cmd)
        self.model.pay(cmd.payment_id, Pay(order_id, amount, paid_at, self.now), self.now)

    def _pay_again(self, data: st.DataObject) -> None:
        """A payment id seen before: the same payment (a duplicate, whatever its paid_at), or
        another order or amount (kept as a dead letter by the task; nothing is written)."""
        first = self.payment_commands[data.draw(st.sampled_from(list(self.payment_commands)))]
        again = replace(first, paid_at=self.now)
        if data.draw(st.booleans()):
            assert self.send(again) == "duplicate"
            return
        other = data.draw(
            st.sampled_from([{"amount": first.amount + 1}, {"order_id": new_id("st-ord")}])
        )
        with pytest.raises(errors.PaymentIdConflict):
            self.app.bus.handle(replace(again, **other), message_id=str(uuid.uuid4()), task="s")

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order_id = self._pick(data, list(self.model.orders), "st-ord")
        self.send(commands.CancelQuotaChange(order_id, "cart left"))
        self.model.cancel(order_id, self.now)

    @precondition(lambda self: self.awaiting())
    @rule(data=st.data())
    def cancel_awaiting(self, data: st.DataObject) -> None:
        """The customer leaves the cart of a change awaiting payment, however late."""
        order_id = data.draw(st.sampled_from(self.awaiting()))
        self.send(commands.CancelQuotaChange(order_id, "cart left"))
        self.model.cancel(order_id, self.now)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        cmd, message_id = data.draw(st.sampled_from(self.sent))
        assert (
            str(self.app.bus.handle(cmd, message_id=message_id, task="stateful"))
            == "duplicate_delivery"
        )

    # -- time -----------------------------------------------------------------------------
    @rule(seconds=st.sampled_from(STEPS))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @precondition(lambda self: self._deadlines())
    @rule(data=st.data())
    def time_reaches_a_deadline(self, data: st.DataObject) -> None:
        """The clock moves to just around a change's deadline, or the end of its grace."""
        deadline = data.draw(st.sampled_from(self._deadlines()))
        grace = int(EXPIRY_GRACE.total_seconds())
        offset = data.draw(st.sampled_from([-1, 0, 1, grace - 1, grace, grace + 1, grace + 60]))
        moved = deadline + timedelta(seconds=offset) - self.now
        if moved > timedelta(0):
            self.clock.advance(seconds=moved.total_seconds())

    def _deadlines(self) -> list[datetime]:
        open_states = ("received", "awaiting_payment")
        return [
            o.deadline
            for o in self.model.orders.values()
            if o.state in open_states and o.deadline is not None
            and o.deadline + EXPIRY_GRACE >= self.now
        ]  # fmt: skip

    @rule(now=st.integers(0, 3))
    def sweep(self, now: int) -> None:
        """The sweep runs now and then (one draw in four): rarely enough that messages often
        reach a change past its deadline before the sweep does."""
        if now == 0:
            self.app.bus.sweep()
            self.model.sweep(self.now)

    # -- compared with the database after every step -----------------------------------
    def _db(self, sql: str, **params: Any) -> list[Any]:
        with self.app.database.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    @invariant()
    def mails_match_the_model(self) -> None:
        rows = self._db(
            "SELECT id, address_limit, version, plan, outside_plan FROM service_mails"
            " WHERE id LIKE 'st-%'"
        )
        found = {
            r.id: (r.address_limit, r.version, r.plan, r.outside_plan is not None) for r in rows
        }
        for mail_id, m in self.model.mails.items():
            assert found.get(mail_id) == (m.limit, m.version, m.plan, m.outside), mail_id

    @invariant()
    def every_order_is_in_the_state_the_model_expects(self) -> None:
        rows = self._db(
            "SELECT order_id, state, reason FROM quota_changes WHERE order_id LIKE 'st-%'"
        )
        found = {r.order_id: (r.state, r.reason) for r in rows}
        for order_id, order in self.model.orders.items():
            expected = None if order.state == "pending" else (order.state, order.reason)
            assert found.get(order_id) == expected, (order_id, order)

    @invariant()
    def every_payment_is_decided_as_the_model_expects(self) -> None:
        rows = self._db("SELECT payment_id, status FROM payments WHERE payment_id LIKE 'st-%'")
        status = {r.payment_id: r.status for r in rows}
        for payment_id, pay in self.model.payments.items():
            assert status.get(payment_id) == pay.decision, (payment_id, pay)


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
            payment_timeout_seconds=TIMEOUT.total_seconds(),
            expiry_grace_seconds=EXPIRY_GRACE.total_seconds(),
            provisioning_grace_seconds=PROVISIONING_GRACE.total_seconds(),
            plans=json.dumps(
                {
                    name: {"min": low, "max": high, **({"upgrades_to": up} if up else {})}
                    for name, (low, high, up) in PLANS.items()
                }
            ),
        ),
        now=clock,
    )
    Quotas.app, Quotas.clock = app, clock
    machine = Quotas.TestCase
    machine.settings = settings(
        max_examples=100,
        stateful_step_count=50,
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

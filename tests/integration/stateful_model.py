"""A small model of the contract's rules, written apart from domain/: what every order,
payment and Service Mail should come to, given the messages in the order they arrived
and the clock at each (tests/integration/test_stateful.py compares it with the
database after every step)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

# starter -> premium (<= 50) -> business: a chain of two upgrades.
PLANS = {"starter": (1, 1, "premium"), "premium": (5, 50, "business"), "business": (20, 1000, None)}
TIMEOUT = timedelta(hours=1)
EXPIRY_GRACE = PROVISIONING_GRACE = timedelta(minutes=5)


@dataclass
class Mail:
    account: str
    plan: str
    limit: int
    ksuite: str | None = None
    version: int = 0
    awaiting: str | None = None  # order id
    outside: bool = False


@dataclass
class Pay:
    order: str
    amount: int
    paid_at: datetime
    received_at: datetime
    decision: str = "pending"  # used | refunded


@dataclass
class Order:
    state: str = "pending"  # no request yet
    mail: str = ""
    account: str = ""
    request_id: str = ""
    expected: int = 0
    new: int = 0
    amount: int = 0
    reason: str | None = None
    deadline: datetime | None = None  # received: end of the grace; awaiting: expires_at
    arrived: datetime | None = None
    early_cancel: bool = False


def target(plan: str, new: int) -> tuple[str, int, int]:
    low, high, up = PLANS[plan]
    while new > high and up is not None:
        plan = up
        low, high, up = PLANS[plan]
    return plan, low, high


@dataclass
class Model:
    mails: dict[str, Mail] = field(default_factory=dict)
    addresses: dict[str, set[str]] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    payments: dict[str, Pay] = field(default_factory=dict)

    # -- messages ----------------------------------------------------------------
    def provision(
        self, mail_id: str, account: str, plan: str, limit: int, ksuite: str | None, now: datetime
    ) -> None:
        mail = self.mails.get(mail_id)
        if mail is None:
            mail = self.mails[mail_id] = Mail(account, plan, limit, ksuite)
        else:
            mail.account, mail.plan, mail.ksuite = account, plan, ksuite
        low, high, _up = PLANS[plan]
        mail.outside = not low <= mail.limit <= high
        if mail.awaiting is not None:
            order = self.orders[mail.awaiting]
            if self._due(order, now):
                self._end(order, "expired")
            elif account != order.account:
                self._end(order, "rejected", "not_owner")
            elif ksuite is not None:
                self._end(order, "rejected", "managed_by_ksuite")
        waiting = [
            (o.arrived, o.request_id, oid)
            for oid, o in self.orders.items()
            if o.state == "received" and o.mail == mail_id
        ]
        for _arrived, _request, order_id in sorted(waiting):  # type: ignore[type-var]
            order = self.orders[order_id]
            assert order.deadline is not None
            if now >= order.deadline:
                self._refuse_unknown(order_id)
            else:
                self._decide(order_id, now)

    def request(self, order_id: str, order: Order, now: datetime) -> None:
        before = self.orders.get(order_id)
        order.early_cancel = before.early_cancel if before else False
        order.arrived = now
        self.orders[order_id] = order
        if order.mail not in self.mails:
            order.state, order.deadline = "received", now + PROVISIONING_GRACE
            return
        self._decide(order_id, now)

    def pay(self, payment_id: str, pay: Pay, now: datetime) -> None:
        self.payments[payment_id] = pay
        self.orders.setdefault(pay.order, Order())
        self._use(payment_id, now)

    def cancel(self, order_id: str, now: datetime) -> None:
        order = self.orders.setdefault(order_id, Order())
        if order.state in ("pending", "received"):
            order.early_cancel = True
        elif order.state == "awaiting_payment":
            self._end(order, "expired" if self._due(order, now) else "cancelled")

    def sweep(self, now: datetime) -> None:
        for order_id, order in self.orders.items():
            if order.state == "received" and order.deadline is not None and order.deadline <= now:
                self._refuse_unknown(order_id)
        for order in self.orders.values():
            if order.state == "awaiting_payment" and self._due(order, now):
                self._end(order, "expired")
        for pay in self.payments.values():
            unclaimed = self.orders[pay.order].state == "pending"
            if pay.decision == "pending" and unclaimed and pay.received_at + TIMEOUT <= now:
                pay.decision = "refunded"

    # -- the rules ------------------------------------------------------------------
    def _decide(self, order_id: str, now: datetime) -> None:
        order = self.orders[order_id]
        mail = self.mails[order.mail]
        reason = self._refusal(order, mail, first=True)
        if reason is not None:
            self._end(order, "rejected", reason)
        elif order.amount == 0:
            self._apply(order)
        else:
            order.state, order.deadline = "awaiting_payment", now + TIMEOUT
            mail.awaiting = order_id
            if order.early_cancel:
                self._end(order, "cancelled")
        held = [(p.received_at, pid) for pid, p in self.payments.items() if p.order == order_id]
        for _at, payment_id in sorted(held):
            if self.payments[payment_id].decision == "pending":
                self._use(payment_id, now)

    def _refusal(self, order: Order, mail: Mail, *, first: bool) -> str | None:
        if order.account != mail.account:
            return "not_owner"
        if mail.ksuite is not None:
            return "managed_by_ksuite"
        if first and mail.awaiting is not None:
            return "change_in_progress"
        if order.new == mail.limit:
            return "no_change"
        if order.expected != mail.limit:
            return "stale_request"
        _plan, low, high = target(mail.plan, order.new)
        if order.new < low:
            return "below_plan_minimum"
        if order.new > high:
            return "above_plan_maximum"
        if order.new < len(self.addresses.get(order.mail, ())):
            return "addresses_in_use"
        return None

    def _use(self, payment_id: str, now: datetime) -> None:
        pay = self.payments[payment_id]
        order = self.orders[pay.order]
        if order.state in ("pending", "received"):
            return  # held
        pay.decision = "refunded"
        if order.state != "awaiting_payment":
            return
        assert order.deadline is not None
        if pay.paid_at > order.deadline or self._due(order, now):
            self._end(order, "expired")
        elif pay.amount != order.amount:
            self._end(order, "rejected", "payment_mismatch")
        elif (reason := self._refusal(order, self.mails[order.mail], first=False)) is not None:
            self._end(order, "rejected", reason)
        else:
            self._apply(order)
            pay.decision = "used"

    def _refuse_unknown(self, order_id: str) -> None:
        self.orders[order_id].state = "rejected"
        self.orders[order_id].reason = "unknown_service_mail"
        for pay in self.payments.values():
            if pay.order == order_id and pay.decision == "pending":
                pay.decision = "refunded"

    def _apply(self, order: Order) -> None:
        mail = self.mails[order.mail]
        mail.plan = target(mail.plan, order.new)[0]
        mail.limit, mail.version, mail.outside = order.new, mail.version + 1, False
        if order.state == "awaiting_payment":
            mail.awaiting = None
        order.state = "applied"

    def _end(self, order: Order, state: str, reason: str | None = None) -> None:
        if order.state == "awaiting_payment":
            self.mails[order.mail].awaiting = None
        order.state, order.reason = state, reason

    @staticmethod
    def _due(order: Order, now: datetime) -> bool:
        return order.deadline is not None and order.deadline + EXPIRY_GRACE <= now

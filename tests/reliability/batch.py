"""A day of at least a thousand orders, as a ledger of exactly what was sent."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.producer import Producer
from tests.helpers import RUN

KINDS = {  # kind -> share of the orders
    "raise": 0.50,
    "paid_early": 0.10,
    "decrease": 0.10,
    "duplicated": 0.05,
    "cancelled": 0.05,
    "unpaid": 0.05,
    "wrong_amount": 0.05,
    "invalid": 0.05,
    "race": 0.05,
}
RACE_GROUP = 5  # competing orders per raced Service Mail


@dataclass
class Message:
    task: str
    payload: dict[str, Any]
    task_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Ledger:
    """What the batch sent: the invariants are checked against it."""

    scenario: str
    mails: dict[str, str] = field(default_factory=dict)  # mail -> account
    orders: dict[str, str] = field(default_factory=dict)  # order -> kind
    invalid_message_ids: set[str] = field(default_factory=set)
    payments: dict[str, str] = field(default_factory=dict)  # payment -> order
    setup: list[Message] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    @property
    def message_count(self) -> int:
        return len(self.setup) + len(self.messages)


def build(scenario: str, orders: int, seed: int = 7) -> Ledger:
    rng = random.Random(seed)
    ledger = Ledger(scenario)
    prefix = f"{scenario}-{RUN}"
    kinds = [k for k, share in KINDS.items() for _ in range(max(1, round(share * orders)))]
    rng.shuffle(kinds)
    race_mail = None
    for n, kind in enumerate(kinds):
        order_id, request_id = f"{prefix}-o{n}", f"{prefix}-r{n}"
        if kind == "race":
            if race_mail is None or n % RACE_GROUP == 0:
                race_mail = _mail(ledger, f"{prefix}-race{n}")
            mail = race_mail
        else:
            mail = _mail(ledger, f"{prefix}-m{n}", addresses=3 if kind == "decrease" else 0)
        ledger.orders[order_id] = kind
        _order(ledger, kind, mail, order_id, request_id, rng)
    rng.shuffle(ledger.messages)  # nothing orders messages; neither does this batch
    _pay_first(ledger)
    return ledger


def _pay_first(ledger: Ledger) -> None:
    """For the paid-early orders, the payment goes out before its request."""
    position = {(m.task, m.payload.get("order_id")): i for i, m in enumerate(ledger.messages)}
    for order_id, kind in ledger.orders.items():
        if kind != "paid_early":
            continue
        req = position[("quota.request_change", order_id)]
        pay = position[("quota.payment_confirmed", order_id)]
        if pay > req:
            ledger.messages[req], ledger.messages[pay] = ledger.messages[pay], ledger.messages[req]


def _mail(ledger: Ledger, mail: str, addresses: int = 0) -> str:
    account = f"acc-{mail}"
    ledger.mails[mail] = account
    ledger.setup.append(
        Message(
            "mail.service_provisioned",
            {"service_mail_id": mail, "account_id": account, "plan": "premium",
             "address_limit": 10, "ksuite_id": None},
        )
    )  # fmt: skip
    for a in range(addresses):
        ledger.setup.append(
            Message("mail.address_created", {"service_mail_id": mail, "address": f"u{a}@{mail}.ch"})
        )
    return mail


def _order(
    ledger: Ledger, kind: str, mail: str, order_id: str, request_id: str, rng: random.Random
) -> None:
    new = 6 if kind == "decrease" else rng.randint(11, 40)
    amount = 0 if kind == "decrease" else new * 100
    request = Message(
        "quota.request_change",
        {"request_id": request_id, "order_id": order_id, "account_id": ledger.mails[mail],
         "service_mail_id": mail, "expected_address_limit": 10, "new_address_limit": new,
         "amount_due": amount, "currency": "CHF", "requested_at": "2026-11-24T09:00:00+00:00"},
    )  # fmt: skip
    if kind == "invalid":
        request.payload["new_address_limit"] = "lots"
        ledger.invalid_message_ids.add(request.task_id)
        ledger.messages.append(request)
        return
    ledger.messages.append(request)
    if kind == "cancelled":
        ledger.messages.append(
            Message("quota.cancel_change", {"order_id": order_id, "reason": "cart left"})
        )
    if kind in ("raise", "paid_early", "duplicated", "race", "wrong_amount"):
        paid = amount - 1 if kind == "wrong_amount" else amount
        payment = _payment(ledger, order_id, paid, f"{order_id}-p")
        ledger.messages.append(payment)
        if kind == "duplicated":
            # The same message delivered twice, and the same facts re-sent as new messages.
            ledger.messages.append(Message(payment.task, payment.payload, payment.task_id))
            ledger.messages.append(Message(request.task, request.payload, request.task_id))
            ledger.messages.append(Message(request.task, request.payload))
            ledger.messages.append(_payment(ledger, order_id, paid, f"{order_id}-p2"))


def _payment(ledger: Ledger, order_id: str, amount: int, payment_id: str) -> Message:
    ledger.payments[payment_id] = order_id
    return Message(
        "quota.payment_confirmed",
        {"payment_id": payment_id, "order_id": order_id, "amount": amount, "currency": "CHF",
         "paid_at": "2026-11-24T09:01:00+00:00"},
    )  # fmt: skip


def send(producer: Producer, messages: list[Message]) -> None:
    for m in messages:
        producer.send(m.task, task_id=m.task_id, schema_version=1, **m.payload)

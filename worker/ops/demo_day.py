"""The demo's day: its orders, and how it sends them as checkout, payments and the mail platform.

A `Day` publishes with a plain Celery producer, as those services would; each
`Order` says the outcome it must reach (`demo_outcome` checks it against the
event stream). The story itself, what is sent when, is `demo_story.play`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from rich.console import Console

PAYMENT_TIMEOUT = 6  # short, so the never-paid order expires while you watch
NOW = "2026-11-24T09:00:00+01:00"
QUEUES = {"quota.": "quota.orders", "mail.": "quota.mail"}
console = Console()

Wait = Callable[[str], None]


@dataclass
class Order:
    """One line of the day: what was sent, and the outcome it must reach."""

    key: str
    story: str
    mail: str
    expected: int
    new: int
    amount: int
    expect: str  # final state, or "rejected:<reason>"
    refund: str | None = None
    account: str | None = None
    request_id: str = ""
    order_id: str = ""
    outcome: str = "—"
    refunds: list[str] = field(default_factory=list)


@dataclass
class Day:
    celery: Celery
    orders: list[Order] = field(default_factory=list)
    accounts: dict[str, str] = field(default_factory=dict)

    def send(self, name: str, **payload: Any) -> None:
        queue = "quota.payments" if name == "quota.payment_confirmed" else None
        queue = queue or next(q for prefix, q in QUEUES.items() if name.startswith(prefix))
        self.celery.send_task(name, kwargs={"schema_version": 1, **payload}, queue=queue)

    def provision(self, mail: str, plan: str, limit: int, ksuite: str | None = None) -> None:
        self.accounts[mail] = f"acc-{mail}"
        console.print(
            f"  → mail platform: Service Mail [bold]{mail}[/bold] on {plan}, limit {limit}"
        )
        self.send(
            "mail.service_provisioned", service_mail_id=mail, account_id=self.accounts[mail],
            plan=plan, address_limit=limit, ksuite_id=ksuite,
        )  # fmt: skip

    def request(self, order: Order) -> None:
        n = len(self.orders) + 1
        order.request_id, order.order_id = f"req-{n:02d}", f"order-{n:02d}"
        self.orders.append(order)
        console.print(f"  → checkout: {order.order_id} {order.story}")
        self.send(
            "quota.request_change", request_id=order.request_id, order_id=order.order_id,
            account_id=order.account or self.accounts[order.mail], service_mail_id=order.mail,
            expected_address_limit=order.expected, new_address_limit=order.new,
            amount_due=order.amount, currency="CHF", requested_at=NOW,
        )  # fmt: skip

    def pay(self, order: Order, amount: int | None = None, suffix: str = "") -> None:
        paid = order.amount if amount is None else amount
        console.print(f"  → payments: {paid / 100:.2f} CHF confirmed for {order.order_id}{suffix}")
        self.send(
            "quota.payment_confirmed", payment_id=f"pay-{order.order_id}{suffix}",
            order_id=order.order_id, amount=paid, currency="CHF", paid_at=NOW,
        )  # fmt: skip

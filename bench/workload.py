"""The benchmark's workload: contract messages for M orders over N Service Mails.

Mix per order (issue #5): 70% raises paid after the request, 10% paid before
it, 10% decreases (no payment), 5% refused (below the plan's minimum), 5%
whose request and payment are both delivered twice. Orders go round-robin
over the Service Mails, so two orders of one Service Mail are N orders apart
and rarely meet (a meeting shows as a `change_in_progress` or `stale_request`
refusal, counted in the results).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

NOW = "2026-11-24T10:00:00+01:00"
KINDS = ("raise", "paid_before", "decrease", "refused", "duplicate")
WEIGHTS = (70, 10, 10, 5, 5)
START_LIMIT = 10


@dataclass(frozen=True)
class Message:
    name: str
    payload: dict[str, object]
    order_id: str
    payment: bool = False


@dataclass
class Workload:
    messages: list[Message] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # order id -> kind

    def paid_after(self) -> set[str]:
        return {o for o, k in self.kinds.items() if k in ("raise", "duplicate")}


def mail_id(tag: str, n: int) -> str:
    return f"sm-{tag}-{n}"


def generate(
    tag: str,
    mails: int,
    orders: int,
    seed: int = 7,
    first_mail: int = 0,
    mail_tag: str | None = None,
) -> Workload:
    """Order ids carry `tag`; Service Mail ids carry `mail_tag` (default `tag`)."""
    mail_tag = mail_tag or tag
    rng = random.Random(seed)
    limits = [START_LIMIT] * mails
    out = Workload()
    for i in range(orders):
        kind = rng.choices(KINDS, WEIGHTS)[0]
        m = i % mails
        current = limits[m]
        order = f"ord-{tag}-{i}"
        if kind == "decrease":
            new, amount = (current - 1, 0) if current > 5 else (current + 1, 0)
        elif kind == "refused":
            new, amount = 3, 0  # below premium's minimum of 5: refused whatever else happens
        else:
            new, amount = current + 5, 500
        if kind != "refused":
            limits[m] = new
        request = Message("quota.request_change", {
            "schema_version": 1, "request_id": f"req-{tag}-{i}", "order_id": order,
            "account_id": f"acc-{mail_tag}-{(first_mail + m)}",
            "service_mail_id": mail_id(mail_tag, first_mail + m), "expected_address_limit": current,
            "new_address_limit": new, "amount_due": amount, "currency": "CHF",
            "requested_at": NOW,
        }, order)  # fmt: skip
        payment = Message("quota.payment_confirmed", {
            "schema_version": 1, "payment_id": f"pay-{tag}-{i}", "order_id": order,
            "amount": amount, "currency": "CHF", "paid_at": NOW,
        }, order, payment=True)  # fmt: skip
        out.kinds[order] = kind
        if kind == "paid_before":
            out.messages += [payment, request]
        elif kind in ("decrease", "refused"):
            out.messages.append(request)
        elif kind == "duplicate":
            out.messages += [request, request, payment, payment]
        else:
            out.messages += [request, payment]
    return out

"""A tiny checkout simulator: what the checkout, payment and mail teams send, through QuotaClient.

    quota-worker dev                          # in one terminal
    python examples/downstream_consumer.py    # in another: watch the events
    python examples/checkout_simulator.py     # in a third: play the orders

Each run plays, for fresh Service Mails: provisioning and a few addresses, a raise
paid at once, a Starter upgraded to Premium, a cart left (cancelled), a decrease
below the addresses in use (refused) and a payment for an unknown order
(refunded). It prints one JSON line per order with the outcome to expect.

QUOTA_BROKER_URL defaults to the embedded Redis of `quota-worker dev`
(QUOTA_DATA_DIR, ./var by default).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from pathlib import Path

from events.client import QuotaClient


def default_broker() -> str:
    data_dir = Path(os.environ.get("QUOTA_DATA_DIR", "var")).resolve()
    return os.environ.get("QUOTA_BROKER_URL", f"redis+socket://{data_dir / 'redis.sock'}")


def names(tag: str) -> tuple[str, str, str, str]:
    return f"sm-{tag}", f"sm-{tag}-starter", f"sm-{tag}-cart", f"acc-{tag}"


def provision(quota: QuotaClient, tag: str) -> list[str]:
    """The mail platform's part: the Service Mails and a few addresses."""
    mail, starter, cart, account = names(tag)
    quota.provision(service_mail_id=mail, account_id=account, plan="premium", address_limit=10)
    quota.provision(service_mail_id=cart, account_id=account, plan="premium", address_limit=5)
    quota.provision(service_mail_id=starter, account_id=account, plan="starter", address_limit=1)
    for name in ("anna", "ben", "chris"):
        quota.address_created(service_mail_id=mail, address=f"{name}@{tag}.example.ch")
    return [mail, starter, cart]


def play(quota: QuotaClient, tag: str) -> list[dict[str, object]]:
    """The checkout's and the payment service's part: the orders."""

    def ids(name: str) -> dict[str, str]:
        return {"request_id": f"req-{tag}-{name}", "order_id": f"ord-{tag}-{name}"}

    mail, starter, cart, account = names(tag)
    plays: list[dict[str, object]] = []

    def order(name: str, expect: str, sm: str, old: int, new: int, amount: int) -> dict[str, str]:
        order_ids = ids(name)
        quota.request_change(**order_ids, account_id=account, service_mail_id=sm,
                             expected_address_limit=old, new_address_limit=new,
                             amount_due=amount, currency="CHF")  # fmt: skip
        plays.append({**order_ids, "service_mail_id": sm, "expect": expect})
        return order_ids

    raise_ = order("raise", "mail.quota.changed", mail, 10, 20, 1500)
    quota.confirm_payment(payment_id=f"pay-{tag}-raise", order_id=raise_["order_id"],
                          amount=1500, currency="CHF")  # fmt: skip
    upgrade = order("upgrade", "mail.quota.changed", starter, 1, 8, 900)
    quota.confirm_payment(payment_id=f"pay-{tag}-upgrade", order_id=upgrade["order_id"],
                          amount=900, currency="CHF")  # fmt: skip
    left = order("left-cart", "mail.quota.change.cancelled", cart, 5, 15, 1000)
    quota.cancel_change(order_id=left["order_id"], reason="customer left the cart")
    # Refused whatever the order of arrival: premium's minimum is 5.
    order("too-low", "mail.quota.change.rejected", mail, 10, 2, 0)
    quota.confirm_payment(payment_id=f"pay-{tag}-stray", order_id=f"ord-{tag}-never-seen",
                          amount=700, currency="CHF")  # fmt: skip
    plays.append({"order_id": f"ord-{tag}-never-seen", "expect": "mail.quota.refund.required"})
    return plays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default=default_broker(), help="broker URL (QUOTA_BROKER_URL)")
    parser.add_argument("--tag", default=uuid.uuid4().hex[:8], help="suffix of every id")
    parser.add_argument(
        "--phase",
        choices=["all", "provision", "orders"],
        default="all",
        help="provision the Service Mails, play the orders, or both with --pause between",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=2.0,
        help="seconds between provisioning and orders: the queues are not ordered, and an "
        "order for a Service Mail not yet provisioned is refused (unknown_service_mail)",
    )
    args = parser.parse_args()
    with QuotaClient(args.broker) as quota:
        if args.phase in ("all", "provision"):
            mails = provision(quota, args.tag)
            print(json.dumps({"provisioned": mails}), flush=True)
        if args.phase == "all":
            time.sleep(args.pause)
        if args.phase in ("all", "orders"):
            for line in play(quota, args.tag):
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

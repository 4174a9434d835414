"""Checkout over HTTP: show A and B, ask for a quote, order only when it is allowed, follow
the order to its end. docs/INTEGRATION.md ("Checkout over HTTP") explains it; a test runs it
against a real `quota-worker api` and worker.

    QUOTA_API_URL=http://127.0.0.1:8080 QUOTA_API_TOKEN=... \\
    QUOTA_BROKER_URL=redis://checkout:checkout@redis:6379/0 \\
      python docs/examples/checkout_http.py SERVICE_MAIL ACCOUNT NEW_LIMIT AMOUNT_CENTS [--pay]

--pay confirms the payment as the payment service would (a demo shortcut: in production the
payment service sends quota.payment_confirmed, with its own broker user). Exit codes: 0 the
change was applied, 1 it ended otherwise, 2 the quote refused it (nothing was sent).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from typing import Any

try:
    import httpx2 as httpx  # pydantic's httpx2; plain httpx has the same API
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

from events.client import QuotaClient

ENDED = frozenset({"applied", "rejected", "expired", "cancelled"})


def api() -> httpx.Client:
    return httpx.Client(
        base_url=os.environ.get("QUOTA_API_URL", "http://127.0.0.1:8080"),
        headers={"Authorization": f"Bearer {os.environ['QUOTA_API_TOKEN']}"},
        timeout=5.0,
    )


def show_service_mail(http: httpx.Client, service_mail_id: str) -> dict[str, Any]:
    """The top of the screen: A (addresses created) and B (the limit)."""
    answer = http.get(f"/v1/service-mails/{service_mail_id}")
    answer.raise_for_status()
    mail: dict[str, Any] = answer.json()
    print(
        f"{mail['addresses_in_use']} addresses created (A), limit {mail['address_limit']} (B), "
        f"plan {mail['plan']} ({mail['plan_min_limit']}-{mail['plan_max_limit']})"
    )
    if mail["pending_change"]:
        pending = mail["pending_change"]
        print(f"a change to {pending['new_address_limit']} awaits payment ({pending['order_id']})")
    return mail


def ask_quote(
    http: httpx.Client, service_mail_id: str, account_id: str, new_limit: int
) -> dict[str, Any]:
    answer = http.get(
        f"/v1/service-mails/{service_mail_id}/quote",
        params={"account_id": account_id, "new_address_limit": new_limit},
    )
    answer.raise_for_status()
    quote: dict[str, Any] = answer.json()
    return quote


def follow(
    http: httpx.Client, order_id: str, until: frozenset[str] = ENDED, seconds: float = 120.0
) -> dict[str, Any]:
    """The order's change, polled until its state is one of `until` (by default: it
    ended); 404 until the worker has received the order."""
    deadline, last = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        answer = http.get(f"/v1/orders/{order_id}")
        if answer.status_code != 404:
            answer.raise_for_status()
            change: dict[str, Any] = answer.json()
            if change["state"] != last:
                last = change["state"]
                print(f"order {order_id}: {last}")
            if change["state"] in until:
                return change
        time.sleep(0.5)
    raise TimeoutError(f"order {order_id} did not end within {seconds:g} s")


def checkout(
    service_mail_id: str, account_id: str, new_limit: int, amount: int, pay: bool = False
) -> int:
    broker = os.environ.get("QUOTA_BROKER_URL", "redis://checkout:checkout@127.0.0.1:6379/0")
    with api() as http:  # base_url QUOTA_API_URL, the bearer token QUOTA_API_TOKEN
        mail = show_service_mail(http, service_mail_id)  # GET /v1/service-mails/{id}
        quote = ask_quote(http, service_mail_id, account_id, new_limit)  # GET .../quote
        if not quote["allowed"]:
            print(f"not possible: {quote['detail']}")  # the sentence for the customer
            return 2
        print(f"allowed: {quote['plan']}, limit {quote['address_limit']} -> {new_limit}")
        order_id = f"ord-{uuid.uuid4()}"
        with QuotaClient(broker) as quota:
            quota.request_change(
                request_id=f"req-{uuid.uuid4()}",
                order_id=order_id,
                account_id=account_id,
                service_mail_id=service_mail_id,
                expected_address_limit=mail["address_limit"],  # the B the customer saw
                new_address_limit=new_limit,
                amount_due=amount,
                currency="CHF",
            )
            change = follow(http, order_id, until=ENDED | {"awaiting_payment"})
            if pay and change["state"] == "awaiting_payment":  # the demo's payment service
                quota.confirm_payment(
                    payment_id=f"pay-{uuid.uuid4()}", order_id=order_id,
                    amount=change["amount_due"], currency=change["currency"],
                )  # fmt: skip
        change = follow(http, order_id)  # GET /v1/orders/{order_id} until it ends
        if change["state"] != "applied":
            print(f"the order ended {change['state']}: {change['detail'] or change['reason']}")
            return 1
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service_mail_id")
    parser.add_argument("account_id")
    parser.add_argument("new_limit", type=int)
    parser.add_argument("amount", type=int, help="amount due in cents (CHF)")
    parser.add_argument("--pay", action="store_true", help="confirm the payment too")
    args = parser.parse_args()
    return checkout(args.service_mail_id, args.account_id, args.new_limit, args.amount, args.pay)


if __name__ == "__main__":
    sys.exit(main())

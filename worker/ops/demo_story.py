"""The demo's story: a day of orders, payments and mail-platform facts, step by step.

Each step is one case of the contract (paid on time, paid twice, paid before
the order, refused by a rule, cancelled, never paid, malformed, duplicated);
`play` runs them in the order a day might bring them, pausing where a real
checkout would wait for its events.
"""

from __future__ import annotations

from worker.ops.demo_day import NOW, PAYMENT_TIMEOUT, Day, Order, Wait, console


def play(day: Day, wait: Wait) -> None:
    """The scenario, in the order a day might bring it."""
    _provision_service_mails(day, wait)
    console.rule("checkout sends orders, payments follow")
    raise_ok = Order("ok", "alpha 10 → 15, paid on time", "alpha", 10, 15, 2500, "applied")
    day.request(raise_ok)
    early = _pay_before_the_order_arrives(day)
    upgrade_ok = Order(
        "upgrade", "charlie starter 1 → 8 (upgrade to premium)", "charlie", 1, 8, 1800, "applied"
    )
    day.request(upgrade_ok)
    _request_what_the_rules_refuse(day)
    _pay_on_time(day, wait, raise_ok)
    _pay_twice(day, wait)
    day.pay(upgrade_ok)
    _send_the_order_after_its_payment(day, wait, early)
    _pay_the_wrong_amount(day, wait)
    _decrease_above_the_addresses_in_use(day, wait)
    _leave_the_cart(day, wait)
    _never_pay(day)
    _send_a_malformed_message(day)
    _send_the_first_order_again(day, raise_ok)


def _provision_service_mails(day: Day, wait: Wait) -> None:
    console.rule("the mail platform reports its Service Mails")
    day.provision("alpha", "premium", 10)
    day.provision("bravo", "premium", 20)
    day.provision("charlie", "starter", 1)
    day.provision("delta", "starter", 1)
    day.provision("echo", "premium", 10, ksuite="ksuite-7")
    day.provision("foxtrot", "premium", 10)
    for n in range(12):
        day.send("mail.address_created", service_mail_id="bravo", address=f"user{n}@bravo.example")
    wait("provisioned")


def _pay_before_the_order_arrives(day: Day) -> Order:
    """The payment of an order checkout has not sent yet; the order follows later."""
    early = Order(
        "early", "foxtrot 10 → 12, paid before the order", "foxtrot", 10, 12, 1000, "applied"
    )
    early.order_id = "order-early"
    console.print("  → payments: 10.00 CHF confirmed for order-early (its order is not here yet)")
    day.send(
        "quota.payment_confirmed", payment_id="pay-order-early", order_id="order-early",
        amount=1000, currency="CHF", paid_at=NOW,
    )  # fmt: skip
    return early


def _request_what_the_rules_refuse(day: Day) -> None:
    starter_small = Order(
        "starter3", "delta starter 1 → 3", "delta", 1, 3, 400, "rejected:below_plan_minimum"
    )
    day.request(starter_small)
    ksuite = Order(
        "ksuite",
        "echo 10 → 20 (part of a kSuite)",
        "echo",
        10,
        20,
        2000,
        "rejected:managed_by_ksuite",
    )
    day.request(ksuite)
    intruder = Order(
        "intruder", "alpha 10 → 50 by another account", "alpha", 10, 50, 8000,
        "rejected:not_owner", account="acc-mallory",
    )  # fmt: skip
    day.request(intruder)
    decrease_no = Order(
        "decrease-no",
        "bravo 20 → 8 (12 addresses in use)",
        "bravo",
        20,
        8,
        0,
        "rejected:addresses_in_use",
    )
    day.request(decrease_no)


def _pay_on_time(day: Day, wait: Wait, order: Order) -> None:
    wait("accepted:" + order.order_id)
    day.pay(order)
    wait("applied:" + order.order_id)


def _pay_twice(day: Day, wait: Wait) -> None:
    twice = Order(
        "twice",
        "alpha 15 → 18, paid twice",
        "alpha",
        15,
        18,
        900,
        "applied",
        refund="duplicate_payment",
    )
    day.request(twice)
    wait("accepted:" + twice.order_id)
    day.pay(twice)
    day.pay(twice, suffix="-again")


def _send_the_order_after_its_payment(day: Day, wait: Wait, early: Order) -> None:
    early.request_id = "req-early"
    day.orders.append(early)
    console.print(f"  → checkout: {early.order_id} {early.story}")
    day.send(
        "quota.request_change", request_id=early.request_id, order_id=early.order_id,
        account_id=day.accounts["foxtrot"], service_mail_id="foxtrot", expected_address_limit=10,
        new_address_limit=12, amount_due=1000, currency="CHF", requested_at=NOW,
    )  # fmt: skip
    wait("applied:order-early")


def _pay_the_wrong_amount(day: Day, wait: Wait) -> None:
    wrong = Order(
        "wrong", "foxtrot 12 → 30, paid the wrong amount", "foxtrot", 12, 30, 3600,
        "rejected:payment_mismatch", refund="payment_mismatch",
    )  # fmt: skip
    day.request(wrong)
    wait("accepted:" + wrong.order_id)
    day.pay(wrong, amount=360)


def _decrease_above_the_addresses_in_use(day: Day, wait: Wait) -> None:
    decrease_ok = Order(
        "decrease-ok", "bravo 20 → 15 (12 addresses in use)", "bravo", 20, 15, 0, "applied"
    )
    day.request(decrease_ok)
    wait("applied:" + decrease_ok.order_id)


def _leave_the_cart(day: Day, wait: Wait) -> None:
    cancelled = Order(
        "cancel", "bravo 15 → 40, customer leaves the cart", "bravo", 15, 40, 5000, "cancelled"
    )
    day.request(cancelled)
    wait("accepted:" + cancelled.order_id)
    console.print(f"  → checkout: cancel {cancelled.order_id} (customer left the cart)")
    day.send("quota.cancel_change", order_id=cancelled.order_id, reason="customer left the cart")


def _never_pay(day: Day) -> None:
    never = Order(
        "never",
        f"delta 1 → 5, never paid (expires after {PAYMENT_TIMEOUT} s)",
        "delta",
        1,
        5,
        900,
        "expired",
    )
    day.request(never)


def _send_a_malformed_message(day: Day) -> None:
    console.print("  → checkout: a malformed message (limit sent as text)")
    day.send(
        "quota.request_change", request_id="req-bad", order_id="order-bad", account_id="acc-x",
        service_mail_id="alpha", expected_address_limit=18, new_address_limit="twenty",
        amount_due=0, currency="CHF", requested_at=NOW,
    )  # fmt: skip
    bad = Order(
        "bad", "alpha 18 → 'twenty' (malformed)", "alpha", 18, 0, 0, "rejected:invalid_message"
    )
    bad.request_id, bad.order_id = "req-bad", "order-bad"
    day.orders.append(bad)


def _send_the_first_order_again(day: Day, first: Order) -> None:
    """A duplicate of an order already applied: it must have no second effect."""
    console.print("  → checkout: the first order again (a duplicate: no second effect)")
    day.send(
        "quota.request_change", request_id=first.request_id, order_id=first.order_id,
        account_id=day.accounts["alpha"], service_mail_id="alpha", expected_address_limit=10,
        new_address_limit=15, amount_due=2500, currency="CHF", requested_at=NOW,
    )  # fmt: skip

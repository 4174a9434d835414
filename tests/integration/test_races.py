"""Concurrent messages for one Service Mail, each in its own transaction and connection."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from domain import commands
from tests.integration.shop import Shop
from worker.bootstrap import Container

THREADS = 8


@pytest.fixture
def shop(app: Container) -> Shop:
    return Shop(app)


def test_concurrent_requests_for_one_service_mail_leave_exactly_one_awaiting(shop: Shop) -> None:
    mail, account = shop.provision(limit=10)
    orders = [shop.request(mail, account, expected=10, new=20 + n) for n in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(shop.send, orders))
    assert sorted(outcomes) == ["awaiting_payment"] + ["rejected:change_in_progress"] * (
        THREADS - 1
    )


def test_a_payment_racing_its_request_is_used_exactly_once(shop: Shop) -> None:
    mail, account = shop.provision(limit=10)
    for _ in range(5):
        order = shop.request(
            mail,
            account,
            expected=shop.mail(mail).address_limit,
            new=shop.mail(mail).address_limit + 1,
        )
        payment = shop.payment(order.order_id)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(shop.send, [order, payment]))
        assert shop.change(order.order_id).state == "applied"
        assert shop.payment_row(payment.payment_id).status == "used"


def test_a_decrease_racing_new_addresses_never_applies_a_limit_below_them(shop: Shop) -> None:
    mail, account = shop.provision(limit=12)
    shop.add_addresses(mail, 4)
    decrease = shop.request(mail, account, expected=12, new=5, amount=0)
    creations = [commands.RecordAddressCreated(mail, f"new{n}@example.ch") for n in range(4)]
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(shop.send, [*creations[:2], decrease, *creations[2:]]))
    for version in shop.history(mail):
        assert version.address_limit >= version.addresses_in_use
    change = shop.change(decrease.order_id)
    assert change.state == "applied" or change.reason == "addresses_in_use"


def test_concurrent_payments_for_one_order_apply_once_and_refund_the_rest(shop: Shop) -> None:
    mail, account = shop.provision(limit=10)
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    payments = [shop.payment(order.order_id) for _ in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(shop.send, payments))
    assert sorted(outcomes) == ["applied"] + ["refund:duplicate_payment"] * (THREADS - 1)
    assert shop.mail(mail).version == 1

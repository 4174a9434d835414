"""Concurrent messages for one Service Mail, each in its own transaction and connection."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from domain import commands
from tests.helpers import new_id
from tests.integration.shop import Shop
from worker.adapters import tables as t
from worker.bootstrap import Container, build
from worker.settings import Settings

THREADS = 8
ROUNDS = 20


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


class TickingClock:
    """A clock that moves on every reading: each message's commit stamp is then unique."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self._now += timedelta(milliseconds=1)
            return self._now


@pytest.fixture
def ticking_shop(settings: Settings) -> Iterator[Shop]:
    container = build(settings, now=TickingClock())
    yield Shop(container)
    container.database.dispose()


def test_a_decrease_racing_new_addresses_counts_exactly_the_addresses_committed_before_it(
    ticking_shop: Shop,
) -> None:
    """The decrease counts exactly the addresses the bus stamped (`processed_at`, read inside
    each locked transaction) before its own, so none committed ahead of it is missed."""
    shop = ticking_shop
    for _ in range(ROUNDS):
        mail, account = shop.provision(limit=12)
        ids = [f"{mail}-addr-{n}" for n in range(8)]
        for n in range(4):
            shop.send(commands.RecordAddressCreated(mail, f"old{n}@example.ch"), ids[n])
        decrease = shop.request(mail, account, expected=12, new=5, amount=0)
        sends: list[tuple[commands.Command, str]] = [
            (commands.RecordAddressCreated(mail, f"new{n}@example.ch"), ids[4 + n])
            for n in range(4)
        ]
        sends.insert(2, (decrease, f"{mail}-decrease"))  # two addresses ahead of it, two after
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda sent: shop.send(*sent), sends))
        stamps = shop.processed_at([*ids, f"{mail}-decrease"])
        before = sum(stamps[i] < stamps[f"{mail}-decrease"] for i in ids)
        assert (seen_by_decision(shop, decrease.order_id), shop.address_count(mail)) == (
            before,
            8,
        ), stamps


def seen_by_decision(shop: Shop, order_id: str) -> int:
    """A as the decrease counted it: in its history row if applied, in its refusal if not."""
    change = shop.change(order_id)
    if change.state == "applied":
        (version,) = [
            h for h in shop.history(change.service_mail_id) if h.request_id == change.request_id
        ]
        return int(version.addresses_in_use)
    assert change.reason == "addresses_in_use", change
    counted = re.match(r"(\d+) addresses exist", change.detail)
    assert counted, change.detail
    return int(counted[1])


def test_concurrent_payments_for_one_order_apply_once_and_refund_the_rest(shop: Shop) -> None:
    mail, account = shop.provision(limit=10)
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    payments = [shop.payment(order.order_id) for _ in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(shop.send, payments))
    assert sorted(outcomes) == ["applied"] + ["refund:duplicate_payment"] * (THREADS - 1)
    assert shop.mail(mail).version == 1


def test_concurrent_snapshots_of_a_mail_not_provisioned_leave_exactly_the_newest(
    shop: Shop,
) -> None:
    """No Service Mail row to lock yet: the snapshots of one take a lock of their own, so
    whatever order they commit in, the newest one's set is what is counted."""
    taken = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    for _ in range(ROUNDS // 4):
        mail = new_id("sm-early")
        snapshots = [
            commands.RecordAddressesSnapshot(
                mail, frozenset(f"s{n}-{k}@x.ch" for k in range(20)), taken + timedelta(minutes=n)
            )
            for n in range(THREADS)
        ]
        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(shop.send, reversed(snapshots)))
        assert outcomes.count("snapshot_applied:+20 -0") >= 1, outcomes
        query = select(t.addresses.c.address).where(t.addresses.c.service_mail_id == mail)
        assert {row.address for row in shop._rows(query)} == snapshots[-1].addresses

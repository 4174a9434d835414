"""Batches against a real database (SQLite or PostgreSQL): several messages in one
transaction, each recorded as its own; concurrent batches never deadlock."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from domain import commands
from tests.integration.shop import Shop
from worker.adapters import tables as t
from worker.bootstrap import Container
from worker.service.bus import Inbound

ROUNDS = 20


@pytest.fixture
def shop(app: Container) -> Shop:
    return Shop(app)


def _inbound(*cmds: commands.Command) -> list[Inbound]:
    return [Inbound(c, f"batch-{uuid.uuid4()}", type(c).__name__) for c in cmds]


def test_a_batch_of_orders_is_applied_each_message_recorded_as_its_own(shop: Shop) -> None:
    mails = [shop.provision(limit=10) for _ in range(3)]
    requests = [shop.request(m, a, expected=10, new=20) for m, a in mails]
    payments = [shop.payment(r.order_id) for r in requests]
    # each order's request and payment in the same batch: the payment sees its request
    batch = _inbound(*[c for pair in zip(requests, payments, strict=True) for c in pair])
    outcomes = [str(o) for o in shop.app.bus.handle_batch(batch)]
    assert outcomes == ["awaiting_payment", "applied"] * 3
    for (mail, _), request in zip(mails, requests, strict=True):
        assert shop.mail(mail).address_limit == 20
        assert shop.types(order_id=request.order_id) == [
            "mail.quota.change.accepted",
            "mail.quota.changed",
        ]
    processed = shop.processed_at([m.message_id for m in batch])
    assert set(processed) == {m.message_id for m in batch}
    table = t.transitions
    rows = shop._rows(select(table.c.message_id, table.c.to_state).where(
        table.c.request_id.in_([r.request_id for r in requests])
    ))  # fmt: skip
    applied_by = {r.message_id for r in rows if r.to_state == "applied"}
    assert applied_by == {m.message_id for m in batch[1::2]}  # the payments, each its own


def test_a_redelivered_message_in_a_batch_is_skipped_and_its_neighbours_processed(
    shop: Shop,
) -> None:
    (mail, account), (other, other_account) = shop.provision(), shop.provision()
    first = _inbound(shop.request(mail, account, expected=10, new=20))
    shop.app.bus.handle_batch(first)
    again = [*first, *_inbound(shop.request(other, other_account, expected=10, new=15))]
    outcomes = [str(o) for o in shop.app.bus.handle_batch(again)]
    assert outcomes == ["duplicate_delivery", "awaiting_payment"]


def test_concurrent_batches_locking_the_same_mails_in_opposite_orders_never_deadlock(
    shop: Shop,
) -> None:
    x, y = shop.provision()[0], shop.provision()[0]

    def batch(first: str, second: str, n: int) -> list[str]:
        cmds = [
            commands.RecordAddressCreated(first, f"{first}-{n}@example.ch"),
            commands.RecordAddressCreated(second, f"{second}-{n}@example.ch"),
        ]
        return [str(o) for o in shop.app.bus.handle_batch(_inbound(*cmds))]

    with ThreadPoolExecutor(2) as pool:
        for n in range(ROUNDS):
            forward = pool.submit(batch, x, y, n)
            backward = pool.submit(batch, y, x, n + ROUNDS)
            assert forward.result() == backward.result() == ["counted", "counted"]
    assert shop.address_count(x) == shop.address_count(y) == 2 * ROUNDS

"""Pruning and re-publishing against a real database and Redis.

Pruning here runs with a `now` past every retention, so it removes what other tests left
too; each test asserts on its own rows only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import select

from domain import commands
from events.stream import StreamPublisher
from tests.helpers import new_id
from tests.integration.shop import Shop
from worker.adapters import republish as rp
from worker.adapters import tables as t
from worker.adapters.prune import prune
from worker.bootstrap import Container
from worker.ops.dead_letters import discard_dead_letter

LATER = timedelta(days=31)  # past both default retentions (30 days)


@pytest.fixture
def shop(app: Container) -> Shop:
    return Shop(app)


def _outbox(shop: Shop, order_id: str) -> list[tuple[str, bool]]:
    rows = shop._rows(
        select(t.outbox.c.type, t.outbox.c.sent_at)
        .where(t.outbox.c.order_id == order_id)
        .order_by(t.outbox.c.id)
    )
    return [(r.type.removeprefix("mail.quota."), r.sent_at is not None) for r in rows]


def _paid_order(shop: Shop) -> commands.RequestQuotaChange:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    assert shop.send(order) == "awaiting_payment"
    assert shop.send(shop.payment(order.order_id)) == "applied"
    return order


def test_published_events_and_old_message_ids_go_the_history_stays(
    shop: Shop, app: Container
) -> None:
    published = _paid_order(shop)
    app.relay().drain()
    unsent = _paid_order(shop)  # committed after the drain: not published yet
    later = datetime.now(UTC) + LATER
    counted = prune(app.database, app.retention(), later, dry_run=True)
    assert counted["published_events"] >= 2 and counted["processed_message_ids"] >= 6
    assert _outbox(shop, published.order_id) == [("change.accepted", True), ("changed", True)]
    removed = prune(app.database, app.retention(), later, batch=2)  # several batches
    assert removed["published_events"] >= 2
    assert _outbox(shop, published.order_id) == []
    assert _outbox(shop, unsent.order_id) == [("change.accepted", False), ("changed", False)]
    assert shop.processed_at(shop.sent) == {}
    assert shop.change(published.order_id).state == "applied"  # the history is kept
    assert len(shop.history(published.service_mail_id)) == 1
    assert prune(app.database, app.retention(), datetime.now(UTC))["published_events"] == 0


def test_a_redelivery_inside_the_dedup_window_and_after_it_has_no_second_effect(
    shop: Shop, app: Container
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    payment = shop.payment(order.order_id)
    assert shop.send(order, message_id="req-" + order.order_id) == "awaiting_payment"
    assert shop.send(payment, message_id="pay-" + order.order_id) == "applied"
    # Inside the window: told by its message id.
    assert shop.send(order, message_id="req-" + order.order_id) == "duplicate_delivery"
    prune(app.database, app.retention(), datetime.now(UTC) + LATER)
    # After it: the message id is gone, its business keys are not.
    assert shop.send(order, message_id="req-" + order.order_id) == "duplicate"
    assert shop.send(payment, message_id="pay-" + order.order_id) == "duplicate"
    assert shop.types(order_id=order.order_id) == [
        "mail.quota.change.accepted", "mail.quota.changed",
    ]  # fmt: skip


def test_discarded_dead_letters_go_stored_ones_stay(shop: Shop, app: Container) -> None:
    kept, discarded = new_id("msg"), new_id("msg")
    for message_id in (kept, discarded):
        app.bus.dead_letter(message_id=message_id, task="t", body="{}", error="e")
    [letter] = shop.dead_letters(discarded)
    assert discard_dead_letter(app, letter.id, "test", "tester")
    prune(app.database, app.retention(), datetime.now(UTC) + LATER)
    assert shop.dead_letters(discarded) == []
    assert len(shop.dead_letters(kept)) == 1


def _entries(client: redis.Redis, stream: str) -> list[tuple[str, str]]:
    found = []
    for _id, fields in client.xrange(stream):
        event = json.loads(fields[b"event"])
        found.append((event["id"], event["subject"]))
    return found


def test_republish_sends_the_window_again_in_order_with_the_same_ids(
    shop: Shop, app: Container
) -> None:
    app.relay().drain()
    start = datetime.now(UTC) - timedelta(seconds=1)
    first, second = _paid_order(shop), _paid_order(shop)
    app.relay().drain()
    original = [
        (e["id"], e["subject"]) for e in shop.events() if e["data"]["order_id"] in
        {first.order_id, second.order_id}
    ]  # fmt: skip
    client, target = redis.Redis.from_url(app.settings.redis()), new_id("backfill")
    try:
        publisher = StreamPublisher(client, target)
        everything = rp.Window(start)
        assert rp.count(app.database, everything) >= 4
        rp.republish(app.database, publisher, everything)
        mine = [e for e in _entries(client, target) if e in original]
        assert mine == original  # commit order, CloudEvents ids unchanged
        client.delete(target)
        rp.republish(app.database, publisher, rp.Window(start, None, second.service_mail_id))
        assert _entries(client, target) == [e for e in original if e[1] == second.service_mail_id]
    finally:
        client.delete(target)


def test_republish_refuses_a_window_past_what_the_outbox_holds() -> None:
    kept_since = datetime(2026, 11, 1, tzinfo=UTC)
    rp.check_window(rp.Window(kept_since), kept_since)
    with pytest.raises(rp.BeyondRetention, match="reaches past what the outbox still holds"):
        rp.check_window(rp.Window(kept_since - timedelta(seconds=1)), kept_since)

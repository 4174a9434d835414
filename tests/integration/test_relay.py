"""The outbox relay against a real database and a real Redis Stream."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from tests.helpers import EventReader, wait_until
from tests.integration.shop import Shop
from worker.adapters import relay as relay_module
from worker.adapters.relay import Relay, Waker
from worker.bootstrap import Container


@pytest.fixture
def shop(app: Container) -> Shop:
    return Shop(app)


@pytest.fixture
def reader(app: Container) -> EventReader:
    reader = EventReader(app.settings.redis(), app.settings.events_stream)
    reader.poll()  # start after what earlier tests published
    return reader


@pytest.fixture
def relay(app: Container) -> Iterator[Relay]:
    relay = app.relay()
    relay.drain()  # publish what earlier tests left, so each test sees only its own
    yield relay


def test_the_relay_publishes_events_in_commit_order_as_cloudevents(
    shop: Shop, relay: Relay, reader: EventReader
) -> None:
    mail, account = shop.provision()
    order = shop.request(mail, account, expected=10, new=20)
    shop.send(order)
    shop.send(shop.payment(order.order_id))
    relay.drain()
    reader.poll()
    fields = [f for _, f in reader.entries if f["subject"] == mail]
    assert [f["type"] for f in fields] == ["mail.quota.change.accepted", "mail.quota.changed"]
    assert json.loads(fields[1]["event"])["specversion"] == "1.0"


def test_the_relay_marks_what_it_published_and_sends_it_only_once(
    shop: Shop, relay: Relay, reader: EventReader
) -> None:
    mail, account = shop.provision()
    shop.send(shop.request(mail, account, expected=10, new=20))
    assert relay.drain() == 1
    assert relay.drain() == 0
    assert len(reader.of_type("mail.quota.change.accepted", service_mail_id=mail)) == 1


def test_a_relay_crash_between_publishing_and_marking_republishes_the_same_event_id(
    shop: Shop, relay: Relay, reader: EventReader
) -> None:
    mail, account = shop.provision()
    shop.send(shop.request(mail, account, expected=10, new=20))

    def crash() -> None:
        raise ConnectionError("relay died before marking the rows sent")

    relay.after_publish = crash
    with pytest.raises(ConnectionError):
        relay.drain()
    relay.after_publish = lambda: None
    assert relay.drain() == 1
    published = reader.of_type("mail.quota.change.accepted", service_mail_id=mail)
    assert len(published) == 2
    assert published[0]["id"] == published[1]["id"]


def test_the_running_relay_is_woken_by_a_commit_not_by_its_poll(
    shop: Shop, app: Container, reader: EventReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the safety poll set to a minute, only the wake-up can publish in time.
    monkeypatch.setattr(relay_module, "SAFETY_POLL_SECONDS", 60.0)
    stop = threading.Event()
    relay = app.relay()
    thread = threading.Thread(target=relay.run, args=(stop, app.redis), daemon=True)
    thread.start()
    try:
        relay_ready = wait_until(lambda: _subscribed(app), 10)
        assert relay_ready, "the relay never subscribed to its wake channel"
        mail, account = shop.provision()
        shop.send(shop.request(mail, account, expected=10, new=20))
        assert wait_until(
            lambda: reader.of_type("mail.quota.change.accepted", service_mail_id=mail), 20
        )
    finally:
        stop.set()
        Waker(app.redis, app.settings.events_stream)()  # end its wait at once
        thread.join(timeout=10)


def _subscribed(app: Container) -> bool:
    channel = f"{app.settings.events_stream}:wake"
    return bool(dict(app.redis.pubsub_numsub(channel)).get(channel.encode(), 0))

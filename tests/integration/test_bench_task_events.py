"""The benchmark's instrument (bench/measure.py TaskEvents) counts every task event of a
drain, those right after an idle spell included: it subscribes once and stays
subscribed (Redis's pub/sub keeps nothing for a subscriber that is away)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.events.receiver import EventReceiver

from bench.measure import TaskEvents
from tests.conftest import Services


@pytest.fixture
def events_app(services: Services) -> Iterator[Celery]:
    app = Celery("bench-events-test", broker=services.broker_url, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = True
    yield app
    app.close()


def test_idle_seconds_keep_one_subscription_and_no_event_is_missed(
    events_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscriptions = []
    opened = EventReceiver.consumer_context

    def counted(self: EventReceiver, **kwargs: Any) -> Any:
        subscriptions.append(time.monotonic())
        return opened(self, **kwargs)

    monkeypatch.setattr(EventReceiver, "consumer_context", counted)
    events = TaskEvents(events_app).start()
    try:
        time.sleep(2.5)  # idle: a receiver with a 1 s capture timeout resubscribes twice
        with events_app.events.default_dispatcher() as dispatcher:
            for n in range(50):
                dispatcher.send("task-succeeded", uuid=f"t{n}")
        deadline = time.monotonic() + 10
        while events.succeeded < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        events.stop()
    assert len(subscriptions) == 1
    assert events.succeeded == 50
    assert not events._thread.is_alive()  # stop() ends it: should_stop, seen each second

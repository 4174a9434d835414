"""Real CloudEvents on a real stream, written by the worker's own publishing code."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from domain import events as domain_events
from events.outbound import OutboundEvent, to_cloudevent
from events.stream import StreamPublisher
from events.subscriber import Event, QuotaEvents
from tests.conftest import Services
from tests.helpers import new_id


def quota_changed(mail: str, version: int) -> OutboundEvent:
    event = domain_events.QuotaChanged(
        request_id=new_id("req"), order_id=new_id("ord"), account_id="acc-1",
        service_mail_id=mail, previous_address_limit=9 + version, address_limit=10 + version,
        addresses_in_use=3, plan="premium", version=version, applied_at=datetime.now(UTC),
    )  # fmt: skip
    return to_cloudevent(event, "quota-worker", datetime.now(UTC))


def expired(mail: str) -> OutboundEvent:
    event = domain_events.ChangeExpired(new_id("req"), new_id("ord"), mail)
    return to_cloudevent(event, "quota-worker", datetime.now(UTC))


def publish(redis_url: str, stream: str, events: list[OutboundEvent]) -> None:
    StreamPublisher(redis.Redis.from_url(redis_url), stream).publish(
        [e.stream_fields() for e in events]
    )


def consume(
    services: Services,
    stream: str,
    handler: Callable[[Event], Any],
    max_events: int,
    events: QuotaEvents | None = None,
    **kw: Any,
) -> QuotaEvents:
    """Run `consume` until `max_events` are acknowledged; fail rather than hang."""
    events = events or QuotaEvents(services.redis_url, stream)
    watchdog = threading.Timer(30, events.stop)
    watchdog.start()
    try:
        done = events.consume("dashboard", handler, block_seconds=0.2, max_events=max_events, **kw)
    finally:
        watchdog.cancel()
    assert done == max_events, f"only {done} of {max_events} acknowledged within 30 s"
    return events

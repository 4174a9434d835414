"""The consumer helper against a real Redis stream: acks, claims, dedup, versions, crashes,
entries not from the worker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from events.outbound import OutboundEvent
from events.schemas import QuotaChangedData
from events.subscriber import Event, QuotaEvents
from tests.conftest import Services
from tests.helpers import new_id
from tests.integration.stream_events import consume, expired, publish, quota_changed


@pytest.fixture
def stream(services: Services) -> str:
    return new_id(f"{services.stream}.sub")


def forged(event: OutboundEvent, **envelope: str) -> OutboundEvent:
    """`event` with its CloudEvent attributes replaced, as a client able to XADD writes it."""
    body = {**json.loads(event.body), **envelope}
    return OutboundEvent(body["id"], event.type, event.subject, json.dumps(body))


def pending(services: Services, stream: str, group: str = "dashboard") -> int:
    info: Any = redis.Redis.from_url(services.redis_url).xpending(stream, group)
    return int(info["pending"])


def quota_versions(seen: list[int]) -> Callable[[Event], None]:
    """A handler recording the `version` of each `mail.quota.changed` it is handed."""

    def handle(event: Event) -> None:
        assert isinstance(event.data, QuotaChangedData)
        seen.append(event.data.version)

    return handle


def test_every_event_is_handed_over_in_order_and_acknowledged(
    services: Services, stream: str
) -> None:
    published = [expired(f"sm-{n}") for n in range(25)]
    publish(services.redis_url, stream, published)
    seen: list[Event] = []
    consume(services, stream, seen.append, 25, batch=10)
    assert [e.id for e in seen] == [e.id for e in published]
    assert seen[0].type == "mail.quota.change.expired" and seen[0].subject == "sm-0"
    assert pending(services, stream) == 0


def test_an_event_published_twice_is_handled_once(services: Services, stream: str) -> None:
    event = expired("sm-dup")
    publish(services.redis_url, stream, [event, event, expired("sm-other")])
    seen: list[str] = []
    consume(services, stream, lambda e: seen.append(e.id), 3)
    assert Counter(seen)[event.id] == 1 and len(seen) == 2
    assert pending(services, stream) == 0


def test_an_id_is_remembered_for_remember_seconds(services: Services, stream: str) -> None:
    event = expired("sm-ttl")
    publish(services.redis_url, stream, [event])
    events = QuotaEvents(services.redis_url, stream, remember_seconds=600)
    consume(services, stream, lambda e: None, 1, events)
    ttl = redis.Redis.from_url(services.redis_url).ttl(f"{stream}:dashboard:seen:{event.id}")
    assert 590 < ttl <= 600


def test_a_quota_change_older_than_the_one_held_is_skipped(services: Services, stream: str) -> None:
    mail = new_id("sm")
    publish(services.redis_url, stream,
            [quota_changed(mail, 1), quota_changed(mail, 3), quota_changed(mail, 2),
             quota_changed(mail, 3), quota_changed(mail, 4)])  # fmt: skip
    versions: list[int] = []
    consume(services, stream, quota_versions(versions), 5)
    assert versions == [1, 3, 4]


def test_a_failed_handler_leaves_the_event_pending_and_it_is_tried_again(
    services: Services, stream: str
) -> None:
    publish(services.redis_url, stream, [expired("sm-a"), expired("sm-b")])
    calls: list[str] = []

    def flaky(event: Event) -> None:
        calls.append(event.subject)
        if calls.count("sm-a") == 1 and event.subject == "sm-a":
            raise RuntimeError("the downstream database is away")

    consume(services, stream, flaky, 2, claim_idle_seconds=0.3)
    assert calls == ["sm-a", "sm-b", "sm-a"]
    assert pending(services, stream) == 0


def test_an_entry_that_is_not_a_cloudevent_is_skipped_not_stuck(
    services: Services, stream: str
) -> None:
    client = redis.Redis.from_url(services.redis_url)
    client.xadd(stream, {"type": "x", "event": "{not json"})
    publish(services.redis_url, stream, [expired("sm-after")])
    seen: list[str] = []
    consume(services, stream, lambda e: seen.append(e.subject), 2)
    assert seen == ["sm-after"]
    assert pending(services, stream) == 0


@pytest.mark.parametrize(
    "envelope",
    [{"source": "quota-worker-forged"}, {"source": ""}, {"specversion": "0.3"},
     {"specversion": "1.0.1"}],
    ids=["wrong-source", "empty-source", "old-specversion", "other-specversion"],
)  # fmt: skip
def test_an_entry_not_from_the_worker_is_skipped_and_cannot_shadow_later_events(
    services: Services, stream: str, envelope: dict[str, str]
) -> None:
    mail = new_id("sm")
    genuine = quota_changed(mail, 2)
    # The incident: a forged top version, here even under the genuine event's id.
    forgery = forged(quota_changed(mail, 2147483647), id=genuine.id, **envelope)
    publish(services.redis_url, stream, [quota_changed(mail, 1), forgery, genuine])
    versions: list[int] = []
    events = consume(services, stream, quota_versions(versions), 3)
    assert versions == [1, 2]
    assert events.skipped == {next(iter(envelope)): 1}
    assert pending(services, stream) == 0
    held = redis.Redis.from_url(services.redis_url).hget(f"{stream}:dashboard:versions", mail)
    assert held == b"2"


def test_a_skipped_entry_is_logged_escaped_and_truncated_never_with_its_body(
    services: Services, stream: str
) -> None:
    mail = new_id("sm")
    source = "\x1b]52;c;cm0gLXJmIH4=\x07\u202e" + "x" * 500
    publish(services.redis_url, stream, [forged(quota_changed(mail, 7), source=source)])
    with capture_logs() as logs:
        consume(services, stream, lambda e: pytest.fail(f"handed over: {e}"), 1)
    (record,) = [r for r in logs if r["event"] == "foreign_event_skipped"]
    assert record["reason"] == "source" and record["specversion"] == "1.0"
    assert record["source"].startswith("\\x1b]52;c;cm0gLXJmIH4=\\x07\\u202exxx")
    assert len(record["source"]) < 100 and record["source"].isprintable()
    assert record["entry_id"] and mail not in repr(record)


def test_only_the_configured_source_is_handed_over(services: Services, stream: str) -> None:
    mail = new_id("sm")
    ours = forged(quota_changed(mail, 2), source="quota-worker-eu")
    publish(services.redis_url, stream, [quota_changed(mail, 1), ours])
    versions: list[int] = []
    events = QuotaEvents(services.redis_url, stream, source="quota-worker-eu")
    consume(services, stream, quota_versions(versions), 2, events=events)
    assert versions == [2] and events.skipped == {"source": 1}


def crash_a_consumer(services: Services, stream: str, name: str, crash_at: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.crashing_consumer",
         services.redis_url, stream, "dashboard", name, str(crash_at)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 17, done.stderr


@pytest.mark.parametrize("restart_as", ["another-consumer", "the-same-consumer"])
def test_a_consumer_killed_mid_batch_loses_nothing(
    services: Services, stream: str, restart_as: str
) -> None:
    published = [expired(f"sm-{n}") for n in range(40)]
    publish(services.redis_url, stream, published)
    crash_a_consumer(services, stream, "the-same-consumer", crash_at=5)
    # It took a batch of 10, acknowledged 4 and died inside the 5th.
    assert pending(services, stream) == 6

    recorder = redis.Redis.from_url(services.redis_url)
    handled = lambda e: recorder.rpush(f"{stream}:handled", e.id)  # noqa: E731
    # Another consumer claims the dead one's entries once idle; the same name
    # (a restarted pod) reads its own pending entries at once.
    idle = 0.5 if restart_as == "another-consumer" else 3600
    consume(services, stream, handled, 36, consumer=restart_as, claim_idle_seconds=idle)

    ids = [i.decode() for i in recorder.lrange(f"{stream}:handled", 0, -1)]
    counts = Counter(ids)
    assert set(counts) == {e.id for e in published}
    # Only the event whose handler was interrupted is seen twice (at least once).
    assert [i for i, c in counts.items() if c > 1] == [published[4].id]
    assert pending(services, stream) == 0

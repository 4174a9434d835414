"""The Redis Stream the events go to, and the wake-up signal of its relay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis


def redis_client(url: str) -> redis.Redis:
    # Bounded timeouts: a hung Redis must surface as an error, never a stuck relay.
    return redis.Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )


class StreamPublisher:
    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client = client
        self.stream = stream

    def publish(self, entries: Sequence[dict[Any, Any]]) -> list[bytes]:
        """XADD every entry in one round trip, in order."""
        pipe = self.client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(self.stream, dict(fields))
        return list(pipe.execute())


def wake_channel(stream: str) -> str:
    return f"{stream}:wake"

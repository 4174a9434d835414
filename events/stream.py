"""The Redis Stream the events go to, and the wake-up signal of its relay."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import redis


def redis_client(url: str) -> redis.Redis:
    # Bounded timeouts: a hung Redis must surface as an error, never a stuck relay.
    return redis.Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )


class StreamPublisher:
    """Adds entries to the stream; with a retention, each batch's last XADD also trims
    what is older (`MINID ~`: approximately, whole stream nodes at a time, so entries a
    little older than the retention may remain; consumer groups are not waited for)."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        retention_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.stream = stream
        self.retention_seconds = retention_seconds
        self.clock = clock

    def publish(self, entries: Sequence[dict[Any, Any]]) -> list[bytes]:
        """XADD every entry in one round trip, in order."""
        pipe = self.client.pipeline(transaction=False)
        for n, fields in enumerate(entries, 1):
            trim = n == len(entries) and self.retention_seconds is not None
            pipe.xadd(self.stream, dict(fields), minid=self.oldest_kept() if trim else None,
                      approximate=True)  # fmt: skip
        return list(pipe.execute())

    def oldest_kept(self) -> str:
        """The first stream id within the retention (ids begin with milliseconds)."""
        assert self.retention_seconds is not None
        return f"{int((self.clock() - self.retention_seconds) * 1000)}-0"


def wake_channel(stream: str) -> str:
    return f"{stream}:wake"

"""A downstream consumer that dies (os._exit, as a kill would) inside its handler.

python -m tests.integration.crashing_consumer REDIS_URL STREAM GROUP CONSUMER CRASH_AT
Records each event id it is handed in the Redis list STREAM:handled, then dies
while handling the CRASH_AT-th event, before returning.
"""

from __future__ import annotations

import os
import sys

import redis

from events.subscriber import Event, QuotaEvents


def main(redis_url: str, stream: str, group: str, consumer: str, crash_at: str) -> None:
    recorder = redis.Redis.from_url(redis_url)
    seen = 0

    def handle(event: Event) -> None:
        nonlocal seen
        seen += 1
        recorder.rpush(f"{stream}:handled", event.id)
        if seen == int(crash_at):
            os._exit(17)

    QuotaEvents(redis_url, stream).consume(group, handle, consumer=consumer, batch=10)


if __name__ == "__main__":
    main(*sys.argv[1:])

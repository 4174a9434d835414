"""The event stream as `status` shows it: each consumer group's lag and oldest unread
entry, against the stream's retention (entries older than it are trimmed whether a
group has read them or not)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis


@dataclass(frozen=True)
class ConsumerGroup:
    name: str
    consumers: int
    pending: int  # delivered, not yet acknowledged
    lag: int | None  # entries not yet delivered plus pending (None: Redis cannot tell)
    oldest_unread_seconds: float | None  # age of the first entry it has not acknowledged

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StreamFacts:
    length: int  # entries in the stream now
    redis_used_memory_bytes: int  # all of that Redis (the broker's too, if shared)
    groups: list[ConsumerGroup]


def stream_facts(client: redis.Redis, stream: str, now: float) -> StreamFacts:
    memory = client.info("memory")
    return StreamFacts(
        int(client.xlen(stream)), int(memory["used_memory"]), consumer_groups(client, stream, now)
    )


def consumer_groups(client: redis.Redis, stream: str, now: float) -> list[ConsumerGroup]:
    """Every consumer group of `stream` (none if the stream does not exist yet)."""
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return []
        raise
    return [_group(client, stream, g, now) for g in groups]


def _group(client: redis.Redis, stream: str, info: dict[Any, Any], now: float) -> ConsumerGroup:
    name = _text(info["name"])
    pending = int(info["pending"])
    undelivered = info.get("lag")  # Redis 7: entries not yet delivered to the group
    oldest = _oldest_pending(client, stream, name) if pending else None
    if oldest is None:
        oldest = _first_after(client, stream, _text(info["last-delivered-id"]))
    return ConsumerGroup(
        name=name,
        consumers=int(info["consumers"]),
        pending=pending,
        lag=None if undelivered is None else int(undelivered) + pending,
        oldest_unread_seconds=None if oldest is None else max(0.0, now - _millis(oldest) / 1000),
    )


def _oldest_pending(client: redis.Redis, stream: str, group: str) -> str | None:
    summary = client.xpending(stream, group)
    return None if not summary.get("min") else _text(summary["min"])


def _first_after(client: redis.Redis, stream: str, last_delivered: str) -> str | None:
    entries = client.xrange(stream, min=f"({last_delivered}", count=1)
    return _text(entries[0][0]) if entries else None


def _millis(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stale_groups(groups: list[ConsumerGroup], retention_seconds: float) -> list[str]:
    """A problem per group whose oldest unread entry is older than half the retention:
    trimming will remove entries it has not read."""
    return [
        f"consumer group {g.name} of the event stream has not read an entry "
        f"{g.oldest_unread_seconds:.0f} s old (more than half of "
        f"QUOTA_STREAM_RETENTION_SECONDS, {retention_seconds:.0f} s): trimming will drop "
        "entries it has not read; is its consumer running?"
        for g in groups
        if g.oldest_unread_seconds is not None and g.oldest_unread_seconds > retention_seconds / 2
    ]

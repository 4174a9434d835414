"""The consumer helper: a downstream system's whole integration with the event stream.

    from events.subscriber import QuotaEvents

    def handle(event):
        if event.type == "mail.quota.changed":
            dashboard.set_limit(event.data.service_mail_id, event.data.address_limit)

    QuotaEvents("redis://dashboard:PASSWORD@redis:6379/0").consume("dashboard", handle)

What it does for you, on a Redis consumer group (`XREADGROUP`):
- creates the group if missing, reading the stream from its start;
- hands over only the worker's own events: an entry whose CloudEvent
  `specversion` is not `1.0`, or whose `source` is not the one given (the
  worker's `QUOTA_EVENT_SOURCE`, `quota-worker` by default), is acknowledged,
  logged (`foreign_event_skipped`) and counted in `skipped`, never handed to
  `handler`, and moves neither the held versions nor the ids seen: an entry
  anyone else wrote cannot shadow a genuine event;
- acknowledges an entry only after `handler` returned; an entry whose handler
  raised stays pending and is tried again;
- claims entries left pending by a crashed consumer once they are idle for
  `claim_idle_seconds` (`XAUTOCLAIM`), so nothing stays stuck;
- skips an event whose `id` this group already handled (the stream is
  at-least-once: the relay may publish an event again after a crash);
- skips a `mail.quota.changed` whose `version` is not above the highest this
  group already handled for that Service Mail.

Delivery is at least once: a consumer killed while its handler runs sees that
event again. Handlers should be idempotent, as everywhere with queues.

The `source` check tells the worker's events from entries written by any
other client that could XADD; the Redis users of deploy/redis/users.acl
(SECURITY.md, "Locking the broker down") keep consumers from writing the
stream at all. The bookkeeping (`<stream>:<group>:seen:<id>`,
`<stream>:<group>:versions`) uses only commands that cannot replace or expire
the stream (SETNX and GETEX, not SET), so a consumer's user needs none that
could. Redis 6.2 or newer (XAUTOCLAIM, GETEX).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from events.schemas import CloudEvent, EventData, QuotaChangedData

log = structlog.get_logger(__name__)

SPECVERSION = "1.0"
DEFAULT_SOURCE = "quota-worker"
"""The worker's default `QUOTA_EVENT_SOURCE`."""

# Marks the event handled and acknowledges it in one step; for a quota change,
# also raises the group's version of the Service Mail, never lowers it.
# SETNX + GETEX rather than SET ... EX: neither can replace a key of another
# type (the stream), so a consumer's ACL user needs no such command.
_FINISH = """
redis.call('SETNX', KEYS[1], '1')
redis.call('GETEX', KEYS[1], 'EX', ARGV[3])
if ARGV[4] ~= '' then
  local held = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0')
  if tonumber(ARGV[5]) > held then redis.call('HSET', KEYS[2], ARGV[4], ARGV[5]) end
end
return redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
"""


@dataclass(frozen=True)
class Event:
    """One event as the handler sees it."""

    entry_id: str
    """The stream entry's id (where it sits in the stream; not the event's identity)."""
    id: str
    type: str
    subject: str
    cloudevent: CloudEvent
    data: EventData | dict[str, Any]
    """The typed data of a known type (`events.schemas`), else the raw dict."""


Handler = Callable[[Event], object]


class QuotaEvents:
    def __init__(
        self,
        redis_url: str,
        stream: str = "quota.events",
        *,
        remember_seconds: int = 30 * 24 * 3600,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        self.client = redis.Redis.from_url(
            redis_url, socket_timeout=30, socket_connect_timeout=10, decode_responses=True
        )
        self.stream = stream
        self.remember_seconds = remember_seconds
        self.source = source
        """Only events of this CloudEvents `source` are handed over (`QUOTA_EVENT_SOURCE`)."""
        self.skipped: Counter[str] = Counter()
        """Entries acknowledged without the handler because they are not the worker's, by
        reason: `specversion`, `source` (`foreign_event_skipped`) or `unreadable`."""
        self._finish = self.client.register_script(_FINISH)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask a running `consume` to return after its current entry."""
        self._stop.set()

    def consume(
        self,
        group: str,
        handler: Handler,
        *,
        consumer: str | None = None,
        batch: int = 100,
        block_seconds: float = 5.0,
        claim_idle_seconds: float = 60.0,
        max_events: int | None = None,
    ) -> int:
        """Hand every event to `handler` until `stop()` (or `max_events` handled); returns
        how many entries were acknowledged."""
        consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._ensure_group(group)
        done = 0
        # Entries this consumer name took before a restart come first, page by page.
        own_pending: str | None = "0"
        while not self._stop.is_set() and (max_events is None or done < max_events):
            entries = self._claim_stale(group, consumer, batch, claim_idle_seconds)
            if own_pending is not None:
                mine = self._read(group, consumer, own_pending, batch, None)
                own_pending = mine[-1][0] if mine else None
                entries += mine
            else:
                entries += self._read(group, consumer, ">", batch, block_seconds)
            for entry_id, fields in entries:
                if fields is None:  # deleted from the stream (XTRIM) while pending
                    self.client.xack(self.stream, group, entry_id)
                    continue
                if self._handle(group, handler, entry_id, fields):
                    done += 1
                if self._stop.is_set() or (max_events is not None and done >= max_events):
                    break
        return done

    def _ensure_group(self, group: str) -> None:
        try:
            self.client.xgroup_create(self.stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _read(
        self, group: str, consumer: str, start: str, batch: int, block: float | None
    ) -> list[tuple[str, dict[str, str] | None]]:
        reply: Any = self.client.xreadgroup(
            group,
            consumer,
            {self.stream: start},
            count=batch,
            block=None if block is None else int(block * 1000),
        )
        return [
            (entry_id, fields or None) for _key, rows in reply or [] for entry_id, fields in rows
        ]

    def _claim_stale(
        self, group: str, consumer: str, batch: int, idle: float
    ) -> list[tuple[str, dict[str, str] | None]]:
        reply: Any = self.client.xautoclaim(
            self.stream, group, consumer, min_idle_time=int(idle * 1000), count=batch
        )
        claimed = [(entry_id, fields or None) for entry_id, fields in reply[1]]
        for entry_id in reply[2] if len(reply) > 2 else []:  # deleted while pending
            self.client.xack(self.stream, group, entry_id)
        if claimed:
            log.info("claimed_stale_entries", group=group, consumer=consumer, count=len(claimed))
        return claimed

    def _handle(self, group: str, handler: Handler, entry_id: str, fields: dict[str, str]) -> bool:
        seen_key = f"{self.stream}:{group}:seen:"
        versions_key = f"{self.stream}:{group}:versions"
        try:
            cloudevent = CloudEvent.model_validate(json.loads(fields["event"]))
        except (KeyError, ValueError, ValidationError) as exc:
            return self._skip(group, entry_id, "unreadable", exc)
        # Before anything is read from it, even its data: an entry someone else wrote
        # must not reach the handler nor move the versions and ids this group holds.
        if cloudevent.specversion != SPECVERSION or cloudevent.source != self.source:
            reason = "specversion" if cloudevent.specversion != SPECVERSION else "source"
            return self._skip(group, entry_id, reason, cloudevent=cloudevent)
        try:
            data = cloudevent.parsed_data() or cloudevent.data
        except ValidationError as exc:
            return self._skip(group, entry_id, "unreadable", exc)
        event = Event(entry_id, cloudevent.id, cloudevent.type, cloudevent.subject, cloudevent,
                      data)  # fmt: skip
        version_field, version = "", 0
        if isinstance(data, QuotaChangedData):
            version_field, version = data.service_mail_id, data.version
        if self.client.exists(seen_key + event.id):
            log.info("duplicate_event_skipped", event_id=event.id, type=event.type)
        elif version_field and version <= int(self.client.hget(versions_key, version_field) or 0):
            log.info("stale_version_skipped", event_id=event.id, version=version)
        else:
            try:
                handler(event)
            except Exception:
                log.exception("handler_failed_will_retry", event_id=event.id, type=event.type)
                return False
        self._finish(
            keys=[seen_key + event.id, versions_key, self.stream],
            args=[group, entry_id, self.remember_seconds, version_field, version],
        )
        return True

    def _skip(
        self,
        group: str,
        entry_id: str,
        reason: str,
        error: Exception | None = None,
        cloudevent: CloudEvent | None = None,
    ) -> bool:
        """Not one of ours: acknowledged so it cannot block the group, logged and counted."""
        if cloudevent is None:
            log.error("unreadable_event_skipped", entry_id=entry_id, error=_shown(str(error), 300))
        else:
            log.warning(
                "foreign_event_skipped",
                entry_id=entry_id,
                reason=reason,
                source=_shown(cloudevent.source),
                specversion=_shown(cloudevent.specversion),
                expected_source=_shown(self.source),
            )
        self.skipped[reason] += 1
        self.client.xack(self.stream, group, entry_id)
        return True


def _shown(value: str, limit: int = 64) -> str:
    """A value from the entry, safe to log: at most `limit` characters, control and
    non-ASCII characters escaped (`\\x1b`, `\\u202e`)."""
    shown = ascii(value[:limit])[1:-1]
    return shown + "..." if len(value) > limit else shown

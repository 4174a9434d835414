"""A Redis transport for kombu that never holds a message it has not recorded.

kombu's Redis transport takes a message with BRPOP and only then, in a second
round trip, records it as unacknowledged (the ``unacked`` hash its visibility
timeout restores from). A consumer killed between the two loses that message:
Redis no longer has it in the queue, and nothing says it was taken (kombu#305,
celery#7950). This transport takes a message with one Lua script that pops it
and records it in the same atomic step, so a message is always either in its
queue or in ``unacked``; a killed worker's messages come back after the
visibility timeout. It also saves the second round trip per message.

Redis has no command that blocks on several lists without taking an element,
so an empty poll is followed by a short wait on the event loop (1 ms, doubling
to ``quota_poll_interval_max``, 50 ms by default) instead of BRPOP's
server-side block; a delivery resets it. While messages flow, nothing waits.

Everything else (acks, rejects, restores, fanout for remote control) is
kombu's own code. ``install()`` (called by ``worker.app.celery_config``)
makes it the transport of every ``redis://``, ``rediss://`` and
``redis+socket://`` URL; QUOTA_REDIS_ATOMIC_POP=false goes back to kombu's.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

# KEYS[1] the unacked hash, KEYS[2] its index, KEYS[3..] the queue lists in
# kombu's BRPOP order; ARGV[1] the time recorded in the index.
# Returns {list, message, recorded}: recorded is 0 for an item that is not a
# kombu envelope (kombu's own code then decides what becomes of it).
POP_AND_RECORD = """
for i = 3, #KEYS do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, message = pcall(cjson.decode, item)
    if ok and type(message) == 'table' and type(message.properties) == 'table' then
      local props = message.properties
      local tag, info = props.delivery_tag, props.delivery_info
      if type(tag) == 'string' and type(info) == 'table'
          and type(info.exchange) == 'string' and type(info.routing_key) == 'string' then
        redis.call('ZADD', KEYS[2], ARGV[1], tag)
        redis.call('HSET', KEYS[1], tag, '[' .. item .. ',' .. cjson.encode(info.exchange)
          .. ',' .. cjson.encode(info.routing_key) .. ']')
        return {KEYS[i], item, 1}
      end
    end
    return {KEYS[i], item, 0}
  end
end
return false
"""

POLL_INTERVAL_MIN = 0.001
POLL_INTERVAL_MAX = 0.050


def _nothing() -> None:
    """A timer's callback: the timer only ends the event loop's wait."""


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self.channel._recorded:
            # Recorded by the pop itself: only the in-memory bookkeeping is left.
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS

    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options,
        "quota_poll_interval_max",
    )
    quota_poll_interval_max = POLL_INTERVAL_MAX

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Delivery tags of the message being delivered whose pop recorded it already.
        self._recorded: set[str] = set()
        self._script_sha: str | None = None
        self._idle_wait = 0.0
        self._next_poll_at = 0.0
        super().__init__(*args, **kwargs)

    def _atomic(self) -> bool:
        # Key prefixes are rewritten by kombu's client for BRPOP only; keep its path there.
        return not self.global_keyprefix

    def _brpop_start(self, timeout: float | None = None) -> None:
        if not self._atomic():
            super()._brpop_start(timeout)
            return None
        wait = self._next_poll_at - time.monotonic()
        if wait > 0:
            if self.connection.event_loop is not None:
                return None  # the timer set by the empty poll brings the loop back
            time.sleep(wait)  # drain_events without an event loop: nothing else to do
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return None
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        if self._script_sha is None:
            self._script_sha = self.client.script_load(POP_AND_RECORD)
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        self.client.connection.send_command(
            "EVALSHA",
            self._script_sha,
            len(keys) + 2,
            self.qos.unacked_key,
            self.qos.unacked_index_key,
            *keys,
            time.time(),
        )
        return None

    def _idle(self) -> None:
        """After an empty poll: wait 1 ms, doubling up to the maximum, before the next."""
        self._idle_wait = min(
            max(self._idle_wait * 2, POLL_INTERVAL_MIN), self.quota_poll_interval_max
        )
        self._next_poll_at = time.monotonic() + self._idle_wait
        loop = self.connection.event_loop
        if loop is not None:
            # Set here, while the loop handles this turn's events: kombu's hub computes
            # a turn's poll timeout before its on_tick callbacks (where _brpop_start
            # runs), so a timer set there would not shorten the wait it is in.
            loop.call_later(self._idle_wait, _nothing)

    def _brpop_read(self, **options: Any) -> bool:
        if not self._atomic():
            return bool(super()._brpop_read(**options))
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "EVALSHA", **options)
            except NoScriptError:
                # Redis restarted and forgot the script: load it again on the next poll.
                self._script_sha = None
                raise Empty() from None
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not reply:
                self._idle()
                raise Empty()
            self._idle_wait = 0.0
            key, item, recorded = reply
            dest = bytes_to_str(key).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            message = loads(bytes_to_str(item))
            tag: str = message["properties"]["delivery_tag"] if recorded else ""
            if tag:
                self._recorded.add(tag)
            try:
                self.connection._deliver(message, dest)
            finally:
                self._recorded.discard(tag)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()


class Transport(kombu_redis.Transport):
    Channel = Channel
    event_loop: Any = None

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        self.event_loop = loop
        super().register_with_event_loop(connection, loop)


def install(atomic: bool = True) -> None:
    """Make this (or, with atomic=False, kombu's own) the transport of Redis URLs here."""
    chosen = f"{__name__}:Transport" if atomic else "kombu.transport.redis:Transport"
    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = chosen
        # Forget a resolution made before (kombu caches transports by name).
        kombu_transport._transport_cache.pop(scheme, None)

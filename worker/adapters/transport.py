"""A Redis transport for kombu that never holds a message it has not recorded.

kombu's Redis transport takes a message with BRPOP and only then, in a second round trip,
records it as unacknowledged (the ``unacked`` hash its visibility timeout restores from). A
consumer killed between the two loses that message: Redis no longer has it in the queue,
and nothing says it was taken (kombu#305, celery#7950). This transport takes a message with
one Lua script that pops it and records it in the same atomic step, so a message is always
either in its queue or in ``unacked``; a killed worker's messages come back after the
visibility timeout. It also saves the second round trip per message.

With ``quota_pop_max`` above 1 (batches, worker/entrypoints/batching.py) one call takes up
to that many items, never more than the prefetch leaves room for, and a batch's
acknowledgements go to Redis in one pipeline (``acks_in_one_pipeline``).

Redis has no command that blocks on several lists without taking an element, so an empty
poll is followed by a short wait on the event loop (1 ms, doubling to
``quota_poll_interval_max``, 50 ms by default) instead of BRPOP's server-side block; a
delivery resets it. While messages flow, nothing waits.

Every item taken from a queue, by either pop, is read by
``worker.adapters.deliveries.read_redis_item`` before kombu sees it: its delivery info
becomes the queue it was really taken from (never the one it claims), and an item kombu
could not decode (not JSON, an unknown ``body_encoding``, bad base64, a compressed body)
becomes a small stand-in the consumer dead-letters, instead of an exception that crashes or
reconnects the worker.

Everything else (acks, rejects, restores, fanout for remote control) is kombu's own code.
``install()`` (called by ``worker.entrypoints.app.create_app``) makes it the transport of
every ``redis://``, ``rediss://`` and ``redis+socket://`` URL; QUOTA_REDIS_ATOMIC_POP=false
(the transport option ``quota_atomic_pop``) takes messages with kombu's own BRPOP instead.

This is the one module that touches kombu's private API (the RabbitMQ transport registers
through `register`, operators' queue depths use `queue_lists`), so ``install()`` first
refuses a kombu or redis-py version it was not tested with (`worker.adapters.versions`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Empty
from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from redis.exceptions import NoScriptError

from worker.adapters import deliveries, versions

# KEYS[1] the unacked hash, KEYS[2] its index, KEYS[3..] the queue lists in
# kombu's BRPOP order; ARGV[1] the time recorded in the index, ARGV[2] the
# largest item decoded here (a larger one is refused by the consumer), ARGV[3] how many
# items to take at most (the first lists first), ARGV[3 + j] the queue of KEYS[2 + j],
# then whether its consumer acknowledges (ARGV[3 + n + j] '1', n lists): a no-ack
# consumer's item (a remote-control reply) is never recorded, as kombu never records
# it. Recorded as sent to that queue through the anonymous exchange, so a restore puts
# it back where it was taken, whatever it claims.
# Returns {list, message, 1, delivery tag} for each recorded item, {list, message, 0, ''}
# for one that is not a kombu envelope (the consumer records what it delivers in
# its place), one after the other; false if every list is empty.
POP_AND_RECORD = """
local n = #KEYS - 2
local most = tonumber(ARGV[3])
local out = {}
for j = 1, n do
  while #out < most * 4 do
    local item = redis.call('RPOP', KEYS[j + 2])
    if not item then break end
    local tag = ''
    if #item <= tonumber(ARGV[2]) and ARGV[3 + n + j] == '1' then
      local ok, message = pcall(cjson.decode, item)
      -- Only what kombu can restore: properties and headers objects (a list has [1]).
      if ok and type(message) == 'table' and type(message.properties) == 'table'
          and type(message.headers) == 'table' and message.headers[1] == nil
          and type(message.properties.delivery_tag) == 'string' then
        tag = message.properties.delivery_tag
      end
    end
    if tag ~= '' then
      redis.call('ZADD', KEYS[2], ARGV[1], tag)
      redis.call('HSET', KEYS[1], tag, '[' .. item .. ',"",' .. cjson.encode(ARGV[3 + j]) .. ']')
    end
    table.insert(out, KEYS[j + 2])
    table.insert(out, item)
    table.insert(out, tag ~= '' and 1 or 0)
    table.insert(out, tag)
  end
end
if #out == 0 then return false end
return out
"""

POLL_INTERVAL_MIN = 0.001
POLL_INTERVAL_MAX = 0.050


def _nothing() -> None:
    """A timer's callback: the timer only ends the event loop's wait."""


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        pipe = self.channel._ack_pipe
        if pipe is None:
            super().ack(delivery_tag)
            return
        self._remove_from_indices(delivery_tag, pipe)  # sent by acks_in_one_pipeline
        virtual.QoS.ack(self, delivery_tag)

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
        "quota_atomic_pop",
        "quota_max_message_bytes",
        "quota_pop_max",
    )
    quota_poll_interval_max = POLL_INTERVAL_MAX
    quota_atomic_pop = True
    quota_max_message_bytes = 4 * 1024 * 1024
    quota_pop_max = 1  # items one script call takes, within the prefetch (the batch size)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Delivery tags of the message being delivered whose pop recorded it already.
        self._recorded: set[str] = set()
        self._script_sha: str | None = None
        self._idle_wait = 0.0
        self._next_poll_at = 0.0
        self._no_ack: set[str] = set()  # queues consumed without acknowledgements
        self._ack_pipe: Any = None  # while acks_in_one_pipeline gathers acknowledgements
        super().__init__(*args, **kwargs)

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._no_ack.add(queue)
        else:
            self._no_ack.discard(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def _atomic(self) -> bool:
        # Key prefixes are rewritten by kombu's client for BRPOP only; keep its path there.
        return bool(self.quota_atomic_pop) and not self.global_keyprefix

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
        pairs = [(self._q_for_pri(q, pri), q) for pri in self.priority_steps for q in queues]
        keys = [key for key, _ in pairs]
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
            deliveries.raw_limit(self.quota_max_message_bytes),
            self._pop_count(),
            *(queue for _, queue in pairs),
            *("0" if queue in self._no_ack else "1" for _, queue in pairs),
        )
        return None

    def _pop_count(self) -> int:
        """As many as the prefetch leaves room for, up to quota_pop_max, at least one."""
        room = self.qos.can_consume_max_estimate()
        return max(1, min(int(self.quota_pop_max), room if room is not None else 1 << 30))

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
        atomic = self._atomic()
        command = "EVALSHA" if atomic else "BRPOP"
        try:
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except NoScriptError:
                # Redis restarted and forgot the script: load it again on the next poll.
                self._script_sha = None
                raise Empty() from None
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not reply:
                if atomic:
                    self._idle()
                raise Empty()
            self._idle_wait = 0.0
            reply = reply if atomic else [*reply, 0, b""]  # BRPOP's: [list, item]
            failure: Exception | None = None
            for at in range(0, len(reply), 4):
                key, item, recorded, tag = reply[at : at + 4]
                tag = bytes_to_str(tag) if recorded == 1 else ""
                try:
                    self._deliver_item(bytes_to_str(key).rsplit(self.sep, 1)[0], item, tag)
                except Exception as exc:  # the others are delivered still; the first raised
                    failure = failure or exc
            if failure is not None:
                raise failure
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def _deliver_item(self, queue: str, item: bytes, tag: str) -> None:
        """Deliver an item taken from `queue`; `tag` is its delivery tag if the pop recorded it."""
        self._queue_cycle.rotate(queue)
        message = deliveries.read_redis_item(item, queue, self.quota_max_message_bytes)
        if tag:
            message["properties"]["delivery_tag"] = tag  # the record's, whatever was read
            self._recorded.add(tag)
        try:
            self.connection._deliver(message, queue)
        finally:
            self._recorded.discard(tag)


@contextmanager
def acks_in_one_pipeline(channel: Any) -> Iterator[None]:
    """The acknowledgements made inside go to Redis in one round trip, at the end (a
    batch's). If that fails, their messages stay recorded as unacknowledged and come
    back after the visibility timeout, where processed ids recognise them. Another
    broker's channel (RabbitMQ's) acknowledges each as it comes."""
    if not isinstance(channel, Channel) or channel._ack_pipe is not None:
        yield
        return
    with channel.conn_or_acquire() as client:
        channel._ack_pipe = client.pipeline()
        try:
            yield
            pipe = channel._ack_pipe
        finally:
            channel._ack_pipe = None
        pipe.execute()


class Transport(kombu_redis.Transport):
    Channel = Channel
    event_loop: Any = None

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        self.event_loop = loop
        super().register_with_event_loop(connection, loop)


def queue_lists(channel: Any, queue: str) -> set[str]:
    """The Redis lists kombu's `channel` keeps `queue` in: one per priority step (an
    empty one has no key)."""
    return {channel._q_for_pri(queue, pri) for pri in channel.priority_steps}


def register(scheme: str, target: str) -> None:
    """Make `target` ("module:Class") the kombu transport of URLs with `scheme`."""
    kombu_transport.TRANSPORT_ALIASES[scheme] = target
    # Forget a resolution made before (kombu caches transports by name).
    kombu_transport._transport_cache.pop(scheme, None)


def install() -> None:
    """Make this the transport of Redis URLs here."""
    versions.check("kombu", "redis")
    for scheme in ("redis", "rediss"):
        register(scheme, f"{__name__}:Transport")

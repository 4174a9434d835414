"""worker.adapters.transport on a real Redis: a taken message is always either queued or recorded.

The crash is a consumer that sent its pop and never read the reply (killed
then): Redis has taken the message either way; only the unacked record it
left behind can bring it back.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue

from tests.helpers import RUN, wait_until
from worker.adapters.transport import acks_in_one_pipeline

# Chosen by URL scheme: kombu takes the transport of a "redis+socket://" URL
# from its scheme even when one is passed by name.
STOCK = "qt-kombu-redis"
ATOMIC = "qt-atomic-redis"


@pytest.fixture(autouse=True)
def transports(monkeypatch: pytest.MonkeyPatch) -> None:
    import kombu.transport

    aliases = kombu.transport.TRANSPORT_ALIASES
    monkeypatch.setitem(aliases, STOCK, "kombu.transport.redis:Transport")
    monkeypatch.setitem(aliases, ATOMIC, "worker.adapters.transport:Transport")


class Broker:
    def __init__(self, urls: tuple[str, str], name: str) -> None:
        self.url, self.name = urls[1], name
        self.client = redis.Redis.from_url(urls[0])
        self.unacked, self.index = f"{name}.unacked", f"{name}.unacked_index"

    def connection(
        self, transport: str, visibility_timeout: float = 3600, **options: Any
    ) -> Connection:
        scheme, _, rest = self.url.partition("://")
        _, plus, variant = scheme.partition("+")  # redis+socket://
        return Connection(
            f"{transport}{plus}{variant}://{rest}",
            transport_options={
                "unacked_key": self.unacked,
                "unacked_index_key": self.index,
                "unacked_mutex_key": f"{self.name}.unacked_mutex",
                "visibility_timeout": visibility_timeout,
                **options,
            },
        )

    def queue(self, suffix: str) -> Queue:
        name = f"{self.name}.{suffix}"
        return Queue(name, Exchange(name, type="direct"), routing_key=name)

    def publish(self, queue: Queue, body: dict[str, Any], priority: int = 0) -> None:
        with self.connection(STOCK) as conn:
            conn.Producer().publish(
                body,
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                declare=[queue],
                priority=priority,
            )

    def queued(self, queue: Queue) -> int:
        return sum(int(self.client.llen(key)) for key in self.client.keys(f"{queue.name}*"))

    def recorded(self) -> list[dict[str, Any]]:
        return [json.loads(raw)[0] for raw in self.client.hvals(self.unacked)]

    def cleanup(self) -> None:
        keys = list(self.client.scan_iter(f"{self.name}*")) + list(
            self.client.scan_iter(f"_kombu.binding.{self.name}*")
        )
        if keys:
            self.client.delete(*keys)


@pytest.fixture
def broker(redis_urls: tuple[str, str], request: pytest.FixtureRequest) -> Iterator[Broker]:
    name = request.node.name.replace("[", "-").replace("]", "")  # no glob in key patterns
    broker = Broker(redis_urls, f"qt-transport.{RUN}.{name}")
    yield broker
    broker.cleanup()


def abandoned_pop(broker: Broker, transport: str, queue: Queue) -> None:
    """A consumer that sends its pop and dies before it reads the reply."""
    conn = broker.connection(transport)
    channel = conn.default_channel
    assert (type(conn.transport).__module__ == "worker.adapters.transport") == (transport == ATOMIC)
    consumer = conn.Consumer([queue], callbacks=[lambda body, message: None])
    consumer.consume()
    conn.transport.cycle.on_poll_start()  # sends BRPOP / the pop script
    assert wait_until(lambda: broker.queued(queue) == 0, 5), "the pop never reached Redis"
    # Killed here: the reply is never read, nothing is acknowledged or restored.
    channel.client.connection.disconnect()


def consume(conn: Connection, queues: list[Queue], count: int) -> list[tuple[str, Any]]:
    got: list[tuple[str, Any]] = []

    def on_message(body: Any, message: Any) -> None:
        got.append((message.delivery_info["routing_key"], body))
        message.ack()

    with conn.Consumer(queues, callbacks=[on_message]):
        deadline = time.monotonic() + 10
        while len(got) < count and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=1)
    return got


def test_a_message_taken_by_a_consumer_killed_before_it_read_it_stays_recorded(
    broker: Broker,
) -> None:
    queue = broker.queue("orders")
    broker.publish(queue, {"n": 1})

    abandoned_pop(broker, ATOMIC, queue)

    assert broker.recorded() and broker.recorded()[0]["body"]
    # The visibility timeout brings it back, and another consumer gets it.
    with broker.connection(ATOMIC, visibility_timeout=0) as conn:
        conn.default_channel.qos.restore_visible(num=10, interval=1)
        assert broker.queued(queue) == 1
        assert [body for _, body in consume(conn, [queue], 1)] == [{"n": 1}]
    assert broker.recorded() == []


def test_kombus_own_transport_loses_that_message(broker: Broker) -> None:
    """The window the atomic pop closes, shown on the stock transport (kombu#305)."""
    queue = broker.queue("orders")
    broker.publish(queue, {"n": 1})

    abandoned_pop(broker, STOCK, queue)

    assert broker.queued(queue) == 0
    assert broker.recorded() == []  # gone: neither queued nor recorded


def test_messages_are_delivered_by_priority_in_order_and_acks_clear_the_record(
    broker: Broker,
) -> None:
    orders, payments = broker.queue("orders"), broker.queue("payments")
    for n in range(3):
        broker.publish(orders, {"n": n})
    broker.publish(payments, {"n": "last"}, priority=9)
    broker.publish(payments, {"n": "p"})

    with broker.connection(ATOMIC) as conn:
        got = consume(conn, [orders, payments], 5)

    bodies = [body["n"] for _, body in got]
    # On kombu's Redis transport 0 is the highest priority and 9 the lowest;
    # each queue stays FIFO within a priority.
    assert bodies[-1] == "last"
    assert [n for n in bodies if isinstance(n, int)] == [0, 1, 2]
    assert sorted(map(str, bodies)) == ["0", "1", "2", "last", "p"]
    assert broker.recorded() == []
    assert broker.client.zcard(broker.index) == 0


def test_a_redis_that_forgot_the_script_keeps_delivering(broker: Broker) -> None:
    queue = broker.queue("orders")
    broker.publish(queue, {"n": 1})
    with broker.connection(ATOMIC) as conn:
        assert len(consume(conn, [queue], 1)) == 1
        broker.client.script_flush()  # as after a restart of Redis
        broker.publish(queue, {"n": 2})
        assert [body for _, body in consume(conn, [queue], 1)] == [{"n": 2}]
    assert broker.recorded() == []


def test_an_unacknowledged_message_is_held_in_the_record_until_acked(broker: Broker) -> None:
    queue = broker.queue("orders")
    broker.publish(queue, {"n": 1})
    held: list[Any] = []
    with (
        broker.connection(ATOMIC) as conn,
        conn.Consumer([queue], callbacks=[lambda body, message: held.append(message)]),
    ):
        conn.drain_events(timeout=5)
        assert len(held) == 1 and len(broker.recorded()) == 1
        held[0].ack()
    assert broker.recorded() == []


@pytest.mark.parametrize("prefetch", [3, 5])
def test_one_pop_takes_and_records_a_batch_within_the_prefetch(
    broker: Broker, prefetch: int
) -> None:
    """quota_pop_max (the batch size): one script call takes up to that many, never more
    than the prefetch leaves room for; a batch's acks clear their records in one pipeline."""
    queue = broker.queue("orders")
    for n in range(7):
        broker.publish(queue, {"n": n})
    held: list[Any] = []
    with (
        broker.connection(ATOMIC, quota_pop_max=5) as conn,
        conn.Consumer([queue], callbacks=[lambda body, message: held.append(message)]) as c,
    ):
        c.qos(prefetch_count=prefetch)
        conn.drain_events(timeout=5)  # one reply of the script
        assert [m.payload["n"] for m in held] == list(range(prefetch))
        assert len(broker.recorded()) == prefetch
        assert broker.queued(queue) == 7 - prefetch
        with acks_in_one_pipeline(held[0].channel):
            for message in held:
                message.ack()
            assert len(broker.recorded()) == prefetch, "acknowledged before the pipeline ran"
        assert broker.recorded() == []
        assert broker.client.zcard(broker.index) == 0


def test_a_no_ack_consumers_message_is_never_recorded(broker: Broker) -> None:
    """As kombu records nothing for a consumer without acknowledgements (remote-control
    replies, `quota-worker status`): a record would be restored to its queue later."""
    queue = broker.queue("replies")
    broker.publish(queue, {"n": 1})
    held: list[Any] = []
    with (
        broker.connection(ATOMIC) as conn,
        conn.Consumer([queue], callbacks=[lambda body, m: held.append(body)], no_ack=True),
    ):
        conn.drain_events(timeout=5)
        assert held == [{"n": 1}]
        assert broker.recorded() == []


def test_an_idle_consumer_on_an_event_loop_polls_again_within_the_interval(
    broker: Broker,
) -> None:
    """An empty poll must bound the event loop's next wait by the poll interval.

    kombu's hub computes a turn's poll timeout before its on_tick callbacks, so a
    re-poll timer set there only took effect after some other timer: a worker at
    moderate load stalled for up to a second whenever its queues ran empty.
    """
    from kombu.asynchronous import Hub

    queue = broker.queue("orders")
    got: list[Any] = []
    with broker.connection(ATOMIC) as conn:
        conn.ensure_connection()
        hub = Hub()
        channel = conn.default_channel
        waits: list[float] = []  # the loop's waits with no poll of ours outstanding
        poll = hub.poller.poll

        def spying_poll(timeout: float) -> Any:
            if not channel._in_poll:
                waits.append(timeout)
            return poll(timeout)

        hub.poller.poll = spying_poll  # type: ignore[method-assign]
        conn.transport.register_with_event_loop(conn.connection, hub)
        with conn.Consumer([queue], callbacks=[lambda body, m: (got.append(body), m.ack())]):
            loop = hub.create_loop()
            for _ in range(50):  # empty polls: the wait grows to its maximum
                next(loop)
            broker.publish(queue, {"n": 1})
            for _ in range(50):
                if got:
                    break
                next(loop)
        hub.close()
    assert got == [{"n": 1}]
    assert len(waits) > 10
    assert max(waits) <= channel.quota_poll_interval_max + 0.001, waits

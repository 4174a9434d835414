"""The composition root: the one place that builds engines, clients and the bus."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from domain.events import DomainEvent
from domain.payment import Payment
from events.stream import StreamPublisher, redis_client
from worker.adapters.db import Database
from worker.adapters.prune import Retention
from worker.adapters.relay import Relay, Waker
from worker.ops.metrics import count_committed
from worker.service.bus import MessageBus
from worker.service.handlers import Deps
from worker.service.uow import SqlUnitOfWork
from worker.settings import Settings


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Container:
    settings: Settings
    database: Database
    redis: redis.Redis
    bus: MessageBus

    def retention(self) -> Retention:
        s = self.settings
        return Retention(
            outbox=timedelta(seconds=s.outbox_retention_seconds),
            dedup=timedelta(seconds=s.dedup_retention_seconds),
        )

    def relay(self) -> Relay:
        retention = self.settings.stream_retention_seconds
        publisher = StreamPublisher(self.redis, self.settings.events_stream, retention)
        return Relay(self.database, publisher)


def build(settings: Settings | None = None, now: Callable[[], datetime] = utcnow) -> Container:
    settings = settings or Settings()
    database = Database(settings.database())
    client = redis_client(settings.redis())
    waker = Waker(client, settings.events_stream)

    def after_commit(events: list[DomainEvent], payments_used: list[Payment]) -> None:
        count_committed(events, payments_used, now())
        waker()

    deps = Deps(
        plans=settings.plan_table,
        payment_timeout=timedelta(seconds=settings.payment_timeout_seconds),
        now=now,
        expiry_grace=timedelta(seconds=settings.expiry_grace_seconds),
        provisioning_grace=timedelta(seconds=settings.provisioning_grace_seconds),
    )
    bus = MessageBus(lambda: SqlUnitOfWork(database, settings.event_source, after_commit), deps)
    return Container(settings, database, client, bus)

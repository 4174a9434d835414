"""The Celery app: queues, routes and the reliability settings, each on purpose."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, signals
from kombu.entity import Queue

from events.inbound import INBOUND, QUEUES
from worker import bootstrap, logs
from worker.adapters import transport, transport_amqp, versions
from worker.adapters.deliveries import CONSUMED_QUEUES
from worker.bootstrap import Container
from worker.settings import Settings

# Redis redelivers a message not acknowledged within this many seconds. It
# must exceed the longest a message can stay unacknowledged while healthy:
# the hard time limit (30 s) and the longest retry countdown (20 s, the
# retried message waits in worker memory). Kept short so a message held by
# a killed worker runs again within about a minute and a half, not an hour.
VISIBILITY_TIMEOUT = 60
TASK_TIME_LIMIT = 30
TASK_SOFT_TIME_LIMIT = 25
MAX_RETRY_COUNTDOWN = 20


def celery_config(settings: Settings) -> dict[str, Any]:
    # The worker's consumer (below) subclasses Celery's internals: refused here too, so
    # `quota-worker run` stops at start instead of restarting worker processes that cannot.
    versions.check("celery")
    broker = settings.broker()
    options: dict[str, Any] = {}
    if _redis(settings):
        # A message popped and recorded as unacknowledged in one atomic step, so a
        # killed worker cannot lose it (kombu#305; see worker/adapters/transport.py,
        # installed by create_app).
        options = {
            "quota_atomic_pop": settings.redis_atomic_pop,
            "quota_max_message_bytes": settings.max_message_bytes,
            # A batch's messages taken in one script call (as many as the prefetch allows).
            "quota_pop_max": batch_max(settings),
            "visibility_timeout": VISIBILITY_TIMEOUT,
            # Scan for unacknowledged messages every 10 s (kombu's default is
            # every ~100 s), so the timeout above is what bounds recovery.
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
            "socket_keepalive": True,
            "socket_timeout": 30,
            "socket_connect_timeout": 10,
            "health_check_interval": 25,
        }
    elif broker.startswith(("amqp", "pyamqp")):
        options = {"confirm_publish": True}
    return {
        "broker_url": broker,
        "broker_transport_options": options,
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # forever: a broker restart is not fatal
        "accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure": True,
        "task_acks_on_timeout": True,
        "task_retry_on_worker_lost": True,
        "task_time_limit": TASK_TIME_LIMIT,
        "task_soft_time_limit": TASK_SOFT_TIME_LIMIT,
        **prefetch(settings),
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 10.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_max_tasks_per_child": 10_000,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_consumer": "worker.entrypoints.consumer:QuotaConsumer",
        "task_queues": [Queue(name, routing_key=name) for name in CONSUMED_QUEUES],  # type: ignore[no-untyped-call]
        "task_default_queue": QUEUES[0],
        "task_routes": {name: {"queue": route.queue} for name, route in INBOUND.items()},
    }


def prefetch(settings: Settings) -> dict[str, Any]:
    """How many messages a worker holds unacknowledged (also the benchmark's baseline's)."""
    size = batch_max(settings)
    return {
        # A batch is taken from what waits unacknowledged in the worker: room for one
        # per pool process (worker/entrypoints/batching.py).
        "worker_prefetch_multiplier": size,
        # kombu pops a Redis message (BRPOP) before it records it as unacknowledged;
        # a message popped while every pool process is busy waits in the socket, and a
        # worker killed then loses it (kombu#305, celery#7950). Fetch only for a free
        # process, unless our atomic pop records every message it takes.
        "worker_disable_prefetch": _redis(settings) and size == 1,
    }


def _redis(settings: Settings) -> bool:
    return settings.broker().startswith(("redis", "rediss"))


def batch_max(settings: Settings) -> int:
    """QUOTA_BATCH_MAX as it applies: on Redis, batches need the atomic pop (a prefetched
    message must be recorded as unacknowledged), so kombu's own BRPOP runs one by one."""
    return 1 if _redis(settings) and not settings.redis_atomic_pop else settings.batch_max


class QuotaApp(Celery):  # type: ignore[misc]
    """The Celery app with what its tasks and consumer use: the settings it was made
    from, and this process's container (built on first use, so after any fork)."""

    def __init__(self, settings: Settings, build: Callable[[Settings], Container]) -> None:
        super().__init__("quota-worker", set_as_current=True)
        self.settings = settings
        self._build = build
        self._lock = threading.Lock()
        self._container: Container | None = None
        self._pid = 0

    def container(self) -> Container:
        with self._lock:
            if self._container is None or self._pid != os.getpid():
                self._container, self._pid = self._build(self.settings), os.getpid()
            return self._container


def create_app(
    settings: Settings, build: Callable[[Settings], Container] = bootstrap.build
) -> QuotaApp:
    """The app for `settings`; installs our transport for its broker's scheme (kombu keeps
    its transports in a registry of its own)."""
    if settings.broker().startswith(("redis", "rediss")):
        transport.install()
    elif settings.broker().startswith(("amqp", "pyamqp")):
        transport_amqp.install()  # tells each delivery's queue (see worker/entrypoints/envelope.py)
    app = QuotaApp(settings, build)
    app.conf.update(celery_config(settings))
    app.conf.imports = ("worker.entrypoints.tasks",)
    # The batches in the worker's `stats` reply, for `quota-worker status` (by name: the
    # step's module imports this one).
    app.steps["consumer"].add("worker.entrypoints.batching:BatchStats")
    return app


def container_of(app: Celery) -> Container:
    """The container of the app a task or the consumer runs in."""
    if not isinstance(app, QuotaApp):
        raise TypeError(f"{app!r} is not quota-worker's app: start it with `quota-worker run`")
    return app.container()


@signals.setup_logging.connect
def _logging(loglevel: object = None, **_: object) -> None:
    # Connected, so Celery leaves logging to us: the same structlog set-up everywhere.
    logs.configure(level=str(loglevel) if isinstance(loglevel, str) else None)

"""`/healthz` and `/readyz`: is the process up; can it answer (database reachable and
migrated, broker and stream Redis reachable)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

from alembic.runtime.migration import MigrationContext
from kombu.connection import Connection

from worker.adapters.db import reading
from worker.adapters.migrate import current_head
from worker.bootstrap import Container
from worker.ops.safe_text import printable

CHECK_SECONDS = 3.0
OK = "ok"


def _schema(container: Container) -> str:
    with container.database.engine.connect() as conn:
        revision = MigrationContext.configure(reading(conn)).get_current_revision()
    if revision != current_head():
        return (
            f"the schema is at revision {printable(revision or 'none')}, not {current_head()}: "
            "run `quota-worker db upgrade`"
        )
    return OK


def _broker(container: Container) -> str:
    # kombu's Redis channel pings on creation; py-amqp opens the connection.
    url = container.settings.broker()
    with Connection(url, connect_timeout=CHECK_SECONDS) as conn:  # type: ignore[no-untyped-call]
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=CHECK_SECONDS
        )
        conn.default_channel  # noqa: B018
    return OK


def _redis(container: Container) -> str:
    container.redis.ping()
    return OK


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


CHECKS: dict[str, Callable[[Container], str]] = {
    "database": _schema,
    "broker": _broker,
    "redis": _redis,
}


class ReadinessChecks:
    """Runs the checks side by side, each bounded: a dependency that hangs is reported as
    not answering, never a probe that hangs."""

    def __init__(self, container: Container) -> None:
        self.container = container
        s = container.settings
        # A driver's error names hosts; should one ever quote a URL, its password goes.
        self.passwords = {
            p for url in (s.database(), s.broker(), s.redis()) if (p := _password(url))
        }
        self.pool = ThreadPoolExecutor(max_workers=2 * len(CHECKS), thread_name_prefix="readyz")

    def check(self) -> dict[str, str]:
        futures = {name: self.pool.submit(check, self.container) for name, check in CHECKS.items()}
        found = {}
        for name, future in futures.items():
            try:
                found[name] = future.result(timeout=CHECK_SECONDS + 1)
            except FutureTimeout:
                found[name] = f"no answer within {CHECK_SECONDS + 1:g} s"
            except Exception as exc:  # any failure to reach it means not ready, with why
                found[name] = f"unreachable: {self._scrub(str(exc) or type(exc).__name__)}"
        return found

    def _scrub(self, text: str) -> str:
        for password in self.passwords:
            text = text.replace(password, "***")
        return printable(text)[:300]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

"""What every `quota-worker` command shares: the click group, settings, the checks, builders.

The command modules (`commands`, `status`, `change_requests`, `dead_letters`) import
this one (and `output`, how the operator commands print), never each other;
it imports none of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
import redis
from pydantic import ValidationError
from sqlalchemy import make_url

from worker import logs
from worker.adapters.versions import UntestedLibraryError
from worker.ops.safe_text import printable

if TYPE_CHECKING:
    from celery import Celery

    from worker.bootstrap import Container
    from worker.settings import Settings

_layout_options: list[Callable[[Any], Any]] = [
    click.option(
        "--processes",
        type=click.IntRange(1, 64),
        default=lambda: int(os.environ.get("QUOTA_WORKER_PROCESSES", "1")),
        show_default="QUOTA_WORKER_PROCESSES or 1",
        help="Celery worker processes, each with its own broker consumer.",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 256),
        # A task waits on the database about half of its time (measured, docs/PERFORMANCE.md):
        # two pool slots per CPU keep the CPUs busy while others wait.
        default=lambda: int(
            os.environ.get("QUOTA_WORKER_CONCURRENCY", str(2 * (os.cpu_count() or 1)))
        ),
        show_default="QUOTA_WORKER_CONCURRENCY or twice the number of CPUs",
        help="Pool size of each worker process.",
    ),
    click.option(
        "--pool",
        type=click.Choice(["prefork", "solo", "threads"]),
        default=lambda: os.environ.get("QUOTA_WORKER_POOL", "prefork"),
        show_default="QUOTA_WORKER_POOL or prefork",
        help="Celery execution pool.",
    ),
]


def layout_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_layout_options):
        func = option(func)
    return func


def load_settings() -> Settings:
    from worker.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        raise click.ClickException(
            "the settings are not valid:\n"
            + "\n".join(lines)
            + "\nFix the QUOTA_* environment variables named above."
        ) from exc


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UntestedLibraryError as exc:  # refused at start: the reason, not a traceback
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """quota-worker: applies Service Mail address-limit changes from checkout messages.

    Settings come from QUOTA_* environment variables (see the README).
    """
    logs.configure()


def check_dependencies(settings: Settings, wait_seconds: float = 30) -> None:
    """The schema is migrated and the stream's Redis answers; else a ClickException saying why."""
    from worker.adapters.migrate import current_head, current_revision

    url = settings.database()
    try:
        revision = current_revision(url)
    except Exception as exc:
        raise click.ClickException(f"cannot reach the database {safe_url(url)}: {exc}") from exc
    if revision != current_head():
        raise click.ClickException(
            f"the database {safe_url(url)} is at revision {printable(revision or 'none')}, "
            f"not {current_head()}: run `quota-worker db upgrade` first"
        )
    client = redis.Redis.from_url(settings.redis(), socket_timeout=5, socket_connect_timeout=5)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            client.ping()
            return
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() > deadline:
                hint = (
                    "start `quota-worker dev` for the embedded default, or set QUOTA_REDIS_URL"
                    if settings.redis_url is None
                    else "check QUOTA_REDIS_URL"
                )
                raise click.ClickException(
                    f"cannot reach Redis for the event stream ({exc}): {hint}"
                ) from exc
            time.sleep(1)


def build_container() -> Container:
    from worker.bootstrap import build

    return build(load_settings())


def build_app() -> Celery:
    from worker.entrypoints.app import create_app

    return create_app(load_settings())

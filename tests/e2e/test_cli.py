"""The `quota-worker` command as an operator meets it: help, clear refusals, clean stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url

from tests.conftest import Services
from tests.e2e.conftest import start_worker, stop_worker
from tests.helpers import short_tmp
from worker.adapters.embedded import EmbeddedRedis

pytestmark = pytest.mark.e2e


def quota_worker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env or {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["db", "upgrade"],
        ["run"],
        ["dev"],
        ["demo"],
        ["prune"],
        ["events", "republish"],
        ["api"],
        ["contract", "openapi"],
    ],
)
def test_every_command_explains_itself_with_help(command: list[str]) -> None:
    result = quota_worker(*command, "--help")
    assert result.returncode == 0
    assert "Usage: " in result.stdout


def test_a_bad_plan_table_stops_the_worker_at_start_with_a_clear_error() -> None:
    env = {**os.environ, "QUOTA_PLANS": '{"premium": {"min": 50, "max": 5}}'}
    result = quota_worker("run", env=env)
    assert result.returncode != 0
    assert "QUOTA_PLANS" in result.stderr and "min 50 is above max 5" in result.stderr


def test_run_on_an_unmigrated_database_says_to_run_db_upgrade(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QUOTA_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "QUOTA_DATA_DIR": str(tmp_path),
    }
    result = quota_worker("run", env=env)
    assert result.returncode != 0
    assert "quota-worker db upgrade" in result.stderr


def test_db_upgrade_creates_the_schema_and_can_run_again(tmp_path: Path) -> None:
    env = {**os.environ, "QUOTA_DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}"}
    assert quota_worker("db", "upgrade", env=env).returncode == 0
    again = quota_worker("db", "upgrade", env=env)
    assert again.returncode == 0, again.stderr
    assert "latest revision" in again.stderr


def test_a_database_password_never_appears_in_the_output() -> None:
    env = {
        **os.environ,
        "QUOTA_DATABASE_URL": "postgresql+psycopg://quota:s3cret-pw@127.0.0.1:1/quota",
    }
    result = quota_worker("run", env=env)
    assert result.returncode != 0
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "***" in result.stderr


def test_sigterm_stops_a_running_worker_cleanly(services: Services) -> None:
    # A worker of its own, on the same services: the session worker keeps running.
    worker = start_worker(services, "sigterm-worker.log")
    assert stop_worker(worker) == 0
    log = worker.log_path.read_text()
    assert "Warm shutdown" in log and '"event": "stopped"' in log


def test_dev_refuses_a_data_dir_whose_embedded_redis_is_already_running() -> None:
    data_dir = short_tmp("qdev-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env["QUOTA_DATA_DIR"] = str(data_dir)
    with EmbeddedRedis(data_dir):
        result = quota_worker("dev", env=env)
    assert result.returncode != 0
    assert "already runs" in result.stderr


def test_a_running_worker_never_logs_the_database_password(services: Services) -> None:
    if not services.on_postgres:
        pytest.skip("an SQLite URL carries no password; runs on PostgreSQL (trust auth ignores it)")
    secret = "s3cret-in-the-url"
    url = make_url(services.database_url).set(password=secret).render_as_string(hide_password=False)
    worker = start_worker(
        services, "secret-worker.log", QUOTA_DATABASE_URL=url, QUOTA_LOG_LEVEL="DEBUG"
    )
    assert stop_worker(worker) == 0
    log = worker.log_path.read_text()
    assert '"event": "stopped"' in log and secret not in log


def test_run_refuses_to_start_when_quota_plans_lacks_a_stored_plan(services: Services) -> None:
    """Named with how many Service Mails are on it, before any message is taken."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, delete, insert

    from tests.helpers import new_id
    from worker.adapters import tables as t

    mail, plan = new_id("sm"), new_id("gold")
    engine = create_engine(services.database_url)
    row = {"id": mail, "account_id": "acc", "plan": plan, "address_limit": 10, "version": 0}
    with engine.begin() as conn:
        conn.execute(
            insert(t.service_mails), {**row, "ksuite_id": None, "updated_at": datetime.now(UTC)}
        )
    try:
        result = quota_worker("run", env=services.worker_env())
    finally:
        with engine.begin() as conn:
            conn.execute(delete(t.service_mails).where(t.service_mails.c.id == mail))
        engine.dispose()
    assert result.returncode == 1
    assert (
        f"QUOTA_PLANS lacks plans that stored Service Mails are on: '{plan}' (1 Service Mails)"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("down", "setting", "url"),
    [
        ("the broker", "QUOTA_BROKER_URL", "redis://127.0.0.1:1/0"),
        ("Redis (the event stream)", "QUOTA_REDIS_URL", "redis://127.0.0.1:1/0"),
        ("the database", "QUOTA_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none"),
    ],
)
def test_status_answers_unhealthy_with_the_reason_when_a_dependency_is_down(
    services: Services, down: str, setting: str, url: str
) -> None:
    """The moment an operator needs it most: no traceback, the reason, a non-zero exit;
    the figures of what can be reached are still shown."""
    env = services.worker_env(**{setting: url})
    for args in (["status", "--no-worker-ok"], ["status", "--no-worker-ok", "--json"]):
        result = quota_worker(*args, env=env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert f"cannot reach {down}:" in result.stdout
    problems = json.loads(result.stdout)["problems"]
    assert [p for p in problems if p.startswith("cannot reach")] == [
        next(p for p in problems if p.startswith(f"cannot reach {down}:"))
    ]  # only what is down


def test_prune_and_republish_say_what_they_did_or_would_do(services: Services) -> None:
    env = services.worker_env()
    counted = quota_worker("prune", "--dry-run", env=env)
    assert counted.returncode == 0, counted.stderr
    assert "would remove 0 published events" in counted.stdout  # all within the retention
    assert "processed message ids" in counted.stdout and "discarded dead letters" in counted.stdout
    pruned = quota_worker("prune", env=env)
    assert pruned.returncode == 0 and "removed 0 published events" in pruned.stdout
    stream = f"backfill-{os.getpid()}"
    would = quota_worker("events", "republish", "--since", "1h", "--stream", stream, "--dry-run",
                         env=env)  # fmt: skip
    assert would.returncode == 0 and f"events into {stream}" in would.stdout


def test_republish_refuses_a_window_older_than_the_outbox_keeps(services: Services) -> None:
    result = quota_worker("events", "republish", "--since", "31d", env=services.worker_env())
    assert result.returncode == 1
    assert "reaches past what the outbox still holds" in result.stderr
    assert "Traceback" not in result.stderr
    bad = quota_worker("events", "republish", "--since", "yesterday", env=services.worker_env())
    assert bad.returncode == 2 and "neither an ISO 8601 time nor a time ago" in bad.stderr

"""Settings come from QUOTA_* variables, with the contract's defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QUOTA_"):
            monkeypatch.delenv(name)


def test_the_defaults_are_the_contracts() -> None:
    s = Settings()
    assert (s.events_stream, s.event_source) == ("quota.events", "quota-worker")
    assert (s.payment_timeout_seconds, s.sweep_interval_seconds) == (86400, 60)
    assert s.metrics_port is None and s.data_dir == Path("./var")
    assert (s.provisioning_grace_seconds, s.expiry_grace_seconds) == (300, 300)


def test_the_embedded_default_lives_under_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_DATA_DIR", "/srv/quota")
    s = Settings()
    assert s.database() == "sqlite:////srv/quota/quota.sqlite3"
    assert s.broker() == "redis+socket:///srv/quota/redis.sock"
    assert s.redis() == "unix:///srv/quota/redis.sock"


def test_urls_from_the_environment_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_BROKER_URL", "amqp://guest:guest@rabbit//")
    assert Settings().broker() == "amqp://guest:guest@rabbit//"


def test_a_bad_plan_table_is_refused_naming_quota_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_PLANS", '{"premium": {"min": 9, "max": 1}}')
    with pytest.raises(ValidationError, match="QUOTA_PLANS: plan 'premium': min 9 is above max 1"):
        Settings()


def test_a_custom_plan_table_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_PLANS", '{"basic": {"min": 2, "max": 20}}')
    assert Settings().plan_table.names() == ["basic"]


def test_secrets_never_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_DATABASE_URL", "postgresql+psycopg://quota:hunter2@db/quota")
    monkeypatch.setenv("QUOTA_BROKER_URL", "redis://:hunter3@redis:6379/0")
    text = repr(Settings()) + str(Settings().model_dump())
    assert "hunter2" not in text and "hunter3" not in text


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_the_payment_timeout_must_be_a_positive_number(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("QUOTA_PAYMENT_TIMEOUT_SECONDS", value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("atomic", "broker"),
    [
        (True, "redis://127.0.0.1:6379/0"),
        (True, "redis+socket:///tmp/redis.sock"),
        (False, "redis://127.0.0.1:6379/0"),
    ],
)
def test_a_redis_broker_gets_our_transport_and_the_pop_quota_redis_atomic_pop_chooses(
    atomic: bool, broker: str
) -> None:
    """Either pop, every delivery passes our transport (it reads each item before kombu)."""
    from worker.entrypoints.app import create_app

    app = create_app(Settings(broker_url=broker, redis_atomic_pop=atomic))
    with app.connection_for_read() as conn:
        assert type(conn.transport).__module__ == "worker.adapters.transport"
    assert app.conf.broker_transport_options["quota_atomic_pop"] is atomic


def test_an_amqp_broker_gets_the_transport_that_tells_each_deliverys_queue() -> None:
    from worker.entrypoints.app import create_app

    for url in ("amqp://guest@127.0.0.1//", "amqps://guest@127.0.0.1//"):
        with create_app(Settings(broker_url=url)).connection_for_read() as conn:
            assert type(conn.transport).__module__ == "worker.adapters.transport_amqp"

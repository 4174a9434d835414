"""`status` reads what the database holds: Service Mails over their limit (A > B)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from domain import commands
from tests.integration.shop import Shop
from worker.bootstrap import Container
from worker.entrypoints.app import create_app
from worker.ops import queries
from worker.ops.queries import Thresholds, snapshot


def test_a_service_mail_holding_more_addresses_than_its_limit_is_counted_and_a_problem(
    app: Container,
) -> None:
    shop, celery = Shop(app), create_app(app.settings)

    def over_limit() -> int:
        status = snapshot(app, celery, Thresholds(require_worker=False), ask_workers=False)
        assert status.over_limit is not None
        return status.over_limit

    before = over_limit()
    full, _ = shop.provision(limit=5)
    over, _ = shop.provision(limit=5)
    for n in range(5):
        shop.send(commands.RecordAddressCreated(full, f"u{n}@x.ch"))  # A = B: not over
    for n in range(6):
        shop.send(commands.RecordAddressCreated(over, f"u{n}@x.ch"))  # the platform let a 6th in
    assert over_limit() == before + 1
    status = snapshot(app, celery, Thresholds(require_worker=False), ask_workers=False)
    assert any("hold more addresses than their limit" in p for p in status.problems)
    shop.send(commands.RecordAddressDeleted(over, "u5@x.ch"))
    assert over_limit() == before


def test_a_broker_out_of_reach_is_told_at_once_and_no_worker_is_asked_through_it(
    app: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database and the stream still answer; the broker's one problem is named, and
    the remote-control round (another connection's retries) is not tried after it."""
    down = app.settings.model_copy(update={"broker_url": SecretStr("redis://127.0.0.1:1/0")})
    celery = create_app(down)

    asked: list[object] = []
    monkeypatch.setattr(queries, "workers", lambda *a, **k: asked.append(a) or ({}, {}))
    status = snapshot(app, celery, Thresholds(require_worker=False))
    reached = [p for p in status.problems if p.startswith("cannot reach")]
    assert len(reached) == 1 and reached[0].startswith("cannot reach the broker:"), reached
    assert not asked, "workers were asked through a broker out of reach"
    assert status.workers == {} and status.over_limit is not None

"""`status` reads what the database holds: Service Mails over their limit (A > B)."""

from __future__ import annotations

from domain import commands
from tests.integration.shop import Shop
from worker.bootstrap import Container
from worker.entrypoints.app import create_app
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

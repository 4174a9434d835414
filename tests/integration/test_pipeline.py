"""The statement queue against a real database: order, errors, and connections left clean."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.integration.shop import Shop
from worker.adapters import tables as t
from worker.adapters.pipeline import StatementQueue
from worker.adapters.statements import INSERT
from worker.bootstrap import Container

MAIL = select(t.service_mails).where(t.service_mails.c.id == bindparam("id"))


@pytest.fixture
def shop(app: Container) -> Shop:
    return Shop(app)


def _mail_row(mail_id: str, limit: int) -> dict[str, object]:
    return {
        "id": mail_id,
        "account_id": "acc",
        "plan": "premium",
        "address_limit": limit,
        "ksuite_id": None,
        "version": 0,
        "updated_at": datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
    }


def test_a_read_sees_the_writes_queued_before_it_and_values_keep_their_types(
    app: Container, shop: Shop
) -> None:
    mail_id = "pipe-" + shop.provision()[0]
    with app.database.engine.connect() as conn, conn.begin():
        queue = StatementQueue(conn)
        queue.write(INSERT[t.service_mails], _mail_row(mail_id, 7))
        (rows,) = queue.read((MAIL, {"id": mail_id}))
        assert rows[0].address_limit == 7
        # UTC-aware datetimes back, as SQLAlchemy's column type gives them on every backend
        assert rows[0].updated_at == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
        assert rows[0].updated_at.utcoffset().total_seconds() == 0
        queue.write(t.service_mails.update().where(t.service_mails.c.id == mail_id), {"version": 3})
        first, second = queue.read((MAIL, {"id": mail_id}), (MAIL, {"id": "nobody"}))
        assert (first[0].version, second) == (3, [])


def test_nothing_queued_is_written_without_the_commit(app: Container, shop: Shop) -> None:
    mail_id = "pipe-" + shop.provision()[0]
    with app.database.engine.connect() as conn, conn.begin():
        StatementQueue(conn).write(INSERT[t.service_mails], _mail_row(mail_id, 7))
    with app.database.engine.connect() as conn:
        assert conn.execute(MAIL, {"id": mail_id}).first() is None


def test_a_failed_commit_raises_sqlalchemys_error_and_leaves_the_connection_clean(
    app: Container, shop: Shop
) -> None:
    mail_id = "pipe-" + shop.provision()[0]
    engine = app.database.engine
    with engine.connect() as conn:
        tx = conn.begin()
        queue = StatementQueue(conn)
        queue.write(INSERT[t.service_mails], _mail_row(mail_id, 7))
        queue.write(INSERT[t.service_mails], _mail_row(mail_id, 8))  # the same key again
        with pytest.raises(IntegrityError):
            queue.commit(tx)
    # Every pooled connection works afterwards and nothing of the batch was written.
    for _ in range(engine.pool.size() + 1):
        with engine.connect() as conn:
            assert conn.execute(MAIL, {"id": mail_id}).first() is None


def test_a_redelivery_is_refused_and_the_pool_stays_usable(shop: Shop, app: Container) -> None:
    mail, account = shop.provision(limit=10)
    order = shop.request(mail, account, expected=10, new=20)
    assert shop.send(order, message_id="again-" + order.order_id) == "awaiting_payment"
    assert shop.send(order, message_id="again-" + order.order_id) == "duplicate_delivery"
    assert shop.send(shop.payment(order.order_id)) == "applied"
    assert shop.mail(mail).address_limit == 20


def test_a_connection_killed_mid_transaction_is_an_operational_error_then_replaced(
    app: Container, shop: Shop
) -> None:
    engine = app.database.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("a server connection to kill exists on PostgreSQL only")
    mail, account = shop.provision(limit=10)
    with engine.connect() as conn:
        tx = conn.begin()
        queue = StatementQueue(conn)
        (pid,) = queue.read((select(text("pg_backend_pid()")), {}))
        with engine.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid[0][0]})
        with pytest.raises(OperationalError):
            queue.read((MAIL, {"id": mail}))
        assert conn.invalidated
        tx.rollback()  # as the unit of work does on any error
    # The bus's next message gets a new connection: the retry a task makes succeeds.
    order = shop.request(mail, account, expected=10, new=20)
    assert shop.send(order) == "awaiting_payment"

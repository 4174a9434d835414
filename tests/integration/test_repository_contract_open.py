"""The repository contract, continued: what a provisioning and the sweep read of the
changes still open (received, awaiting payment), on both stores."""

from __future__ import annotations

from datetime import timedelta

from domain import commands, errors
from domain.mail import ServiceMail
from domain.model import ChangeState, QuotaChange
from tests.helpers import new_id
from tests.integration.test_repository_contract import (  # the same stores and helpers
    NOW,
    PLANS,
    Store,
    _mail,
    _pay,
    _received,
    store,  # noqa: F401 (the fixture, used by name)
)


def test_a_provisioning_reads_the_mail_and_its_change_awaiting_payment(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    mail = _mail(store)
    change = _received(store, mail)
    _received(store, _mail(store))  # another Service Mail's: not read
    with store.new_uow() as uow:
        facts = uow.repo.provisioning_facts(mail.id)
        assert facts.mail is not None and facts.mail.id == mail.id
        [open_change] = facts.open_changes
        assert open_change.change.order_id == change.order_id
        assert open_change.change.state is ChangeState.AWAITING_PAYMENT
        assert uow.repo.change_of_order(change.order_id) is open_change.change


def test_a_provisioning_of_a_new_mail_reads_none_and_a_decided_change_is_not_open(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    mail = _mail(store)
    change = _received(store, mail)
    with store.new_uow() as uow:
        uow.emit(uow.repo.change_of_order(change.order_id).expire(NOW + timedelta(hours=2)))  # type: ignore[union-attr]
        uow.commit(NOW)
    with store.new_uow() as uow:
        assert uow.repo.provisioning_facts(mail.id).open_changes == []
        assert uow.repo.provisioning_facts("sm-never-provisioned").mail is None


def _waiting(on: Store, grace: int = 300, ago: int = 0) -> QuotaChange:
    """A request stored in `received` `ago` seconds before NOW: no Service Mail yet."""
    change = QuotaChange.requested(
        commands.RequestQuotaChange(
            new_id("req"), new_id("ord"), new_id("acc"), new_id("sm-unknown"), 1, 8, 1500,
            "CHF", NOW,
        )
    )  # fmt: skip
    with on.new_uow() as uow:
        uow.repo.request_facts(change)
        assert change.receive(
            None, PLANS, other_change_awaiting=False, now=NOW - timedelta(seconds=ago),
            payment_timeout=timedelta(hours=1), provisioning_grace=timedelta(seconds=grace),
        ) == []  # fmt: skip
        uow.repo.add(change)
        uow.commit(NOW)
    return change


def test_a_provisioning_reads_the_waiting_requests_with_their_held_payments_and_cancel(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    change = _waiting(store)
    payment = _pay(store, change.order_id, NOW)
    with store.new_uow() as uow:
        uow.repo.hold_early_cancel(change.order_id, "cart left", NOW)
        uow.commit(NOW)
    with store.new_uow() as uow:
        facts = uow.repo.provisioning_facts(change.service_mail_id)
    assert facts.mail is None
    [waiting] = facts.open_changes
    assert (waiting.change.state, waiting.change.expires_at) == (
        ChangeState.RECEIVED, NOW + timedelta(seconds=300),
    )  # fmt: skip
    assert waiting.early_cancel == "cart left"
    assert [p.payment_id for p in waiting.held_payments] == [payment.payment_id]


def test_the_sweep_finds_waiting_requests_past_their_grace_or_whose_mail_came(
    store: Store,  # noqa: F811 (the fixture imported above)
) -> None:
    past, not_yet, provisioned = (
        _waiting(store, 60, ago=120),
        _waiting(store, 3600),
        _waiting(store, 3600),
    )
    with store.new_uow() as uow:
        mail = ServiceMail(provisioned.service_mail_id, provisioned.account_id, "starter", 1)
        uow.repo.add_service_mail_if_absent(mail, NOW)
        uow.commit(NOW)
    with store.new_uow() as uow:
        found = {o for _r, o in uow.repo.unprovisioned_changes(NOW, 100_000)}
    mine = found & {past.order_id, not_yet.order_id, provisioned.order_id}
    assert mine == {past.order_id, provisioned.order_id}
    with store.new_uow() as uow:  # leave nothing waiting for the other tests
        for change in (past, not_yet, provisioned):
            again = uow.repo.change_of_order(change.order_id)
            assert again is not None
            uow.emit([again.reject(errors.UnknownServiceMail("test"), NOW)])
        uow.commit(NOW)

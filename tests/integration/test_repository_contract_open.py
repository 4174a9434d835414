"""The repository contract, continued: what a provisioning and the sweep read of the
changes still open (received, awaiting payment), on both stores."""

from __future__ import annotations

from datetime import timedelta

from domain.model import ChangeState
from tests.integration.test_repository_contract import (  # the same stores and helpers
    NOW,
    Store,
    _mail,
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

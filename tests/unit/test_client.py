"""The producer client refuses a malformed message before anything is sent."""

from __future__ import annotations

import pytest

from events.client import InvalidMessageError, QuotaClient

# Nothing listens there: a message that got as far as sending would fail differently.
NOWHERE = "redis://127.0.0.1:9/0"


def test_a_malformed_request_raises_and_is_not_sent() -> None:
    client = QuotaClient(NOWHERE, publish_retries=0)
    with pytest.raises(InvalidMessageError) as raised:
        client.request_change(request_id="req 1", order_id="ord-1", account_id="acc-1",
                              service_mail_id="sm-1", expected_address_limit=10,
                              new_address_limit=-3, amount_due=100, currency="chf")  # fmt: skip
    detail = raised.value.detail
    assert "request_id" in detail and "new_address_limit" in detail and "currency" in detail
    assert raised.value.name == "quota.request_change"


def test_an_unknown_message_name_raises() -> None:
    with pytest.raises(InvalidMessageError, match="no such message"):
        QuotaClient(NOWHERE).send("quota.refund", {"schema_version": 1})


def test_a_time_without_offset_is_refused_and_defaults_are_aware() -> None:
    client = QuotaClient(NOWHERE, publish_retries=0)
    with pytest.raises(InvalidMessageError, match="paid_at"):
        client.confirm_payment(payment_id="p", order_id="o", amount=1, currency="CHF",
                               paid_at="2026-11-24T10:00:00")  # fmt: skip


def test_a_snapshot_of_more_than_ten_thousand_addresses_raises_and_is_not_sent() -> None:
    client = QuotaClient(NOWHERE, publish_retries=0)
    with pytest.raises(InvalidMessageError, match="addresses"):
        client.addresses_snapshot(
            service_mail_id="sm-1", addresses=(f"u{n}@b.ch" for n in range(10_001))
        )


def test_a_valid_message_gets_as_far_as_the_broker() -> None:
    """The refusals above are the client's own: a valid message does try to send."""
    client = QuotaClient(NOWHERE, publish_retries=0)
    with pytest.raises(Exception) as raised:
        client.cancel_change(order_id="ord-1", reason="cart left")
    assert not isinstance(raised.value, InvalidMessageError)

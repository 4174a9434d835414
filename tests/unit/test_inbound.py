"""The inbound schemas: strict, unknown fields refused, every field bounded."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from events.inbound import INBOUND, Message
from tests.payloads import VALID


def schema(task: str) -> type[Message]:
    return INBOUND[task].model


def refuses(task: str, **changes: Any) -> bool:
    payload = {**VALID[task], **changes}
    try:
        schema(task).model_validate(payload)
    except ValidationError:
        return True
    return False


@pytest.mark.parametrize("task", sorted(INBOUND))
def test_a_valid_payload_is_accepted(task: str) -> None:
    assert schema(task).model_validate(VALID[task])


@pytest.mark.parametrize("task", sorted(INBOUND))
def test_an_unknown_field_is_refused(task: str) -> None:
    assert refuses(task, discount="FREE")


@pytest.mark.parametrize("task", sorted(INBOUND))
def test_every_field_is_required(task: str) -> None:
    for name in VALID[task]:
        payload = {k: v for k, v in VALID[task].items() if k != name}
        with pytest.raises(ValidationError):
            schema(task).model_validate(payload)


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, True, None], ids=repr)
def test_only_schema_version_one_is_understood(version: object) -> None:
    assert refuses("quota.request_change", schema_version=version)


@pytest.mark.parametrize(
    "value",
    [20.0, 20.5, "20", True, None, -1, 2**31, 10**30, [20]],
    ids=["float", "fraction", "string", "bool", "null", "negative", "2^31", "huge", "list"],
)
def test_a_limit_must_be_a_bounded_non_negative_integer(value: object) -> None:
    assert refuses("quota.request_change", new_address_limit=value)


@pytest.mark.parametrize("amount", [0, -100, 10**16, 15.0, "1500"], ids=repr)
def test_a_payment_amount_must_be_a_positive_integer(amount: object) -> None:
    assert refuses("quota.payment_confirmed", amount=amount)


def test_a_request_may_be_free() -> None:
    assert not refuses("quota.request_change", amount_due=0)


@pytest.mark.parametrize(
    "identifier",
    [
        "", "x" * 65, "has space", "zürich", "tab\there", "abc\n", "nul\x00",
        "1; DROP TABLE x", "a/b", 7,
    ],
    ids=[
        "empty", "65-chars", "space", "non-ascii", "tab", "trailing-newline", "nul", "sql",
        "slash", "int",
    ],
)  # fmt: skip
def test_an_identifier_outside_the_contracts_alphabet_is_refused(identifier: object) -> None:
    assert refuses("quota.request_change", request_id=identifier)


def test_an_identifier_of_sixty_four_allowed_characters_is_accepted() -> None:
    assert not refuses("quota.request_change", order_id="A-z_0.9:" * 8)


@pytest.mark.parametrize("currency", ["chf", "CHFF", "CH", "C1F", ""], ids=repr)
def test_a_currency_must_be_three_capital_letters(currency: str) -> None:
    assert refuses("quota.payment_confirmed", currency=currency)


@pytest.mark.parametrize(
    "when",
    ["2026-11-24T10:00:00", "2026-11-24", "yesterday", "24.11.2026 10:00", 1732442400, ""],
    ids=["no-offset", "date-only", "word", "swiss-format", "epoch-number", "empty"],
)
def test_a_time_must_be_iso_8601_with_an_offset(when: object) -> None:
    assert refuses("quota.request_change", requested_at=when)


def test_a_time_with_an_offset_is_read_as_an_aware_datetime() -> None:
    message = schema("quota.request_change").model_validate(VALID["quota.request_change"])
    assert message.requested_at.astimezone(UTC) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "address",
    [
        "no-at-sign", "@b.ch", "a@", "a@@b.ch", "a b@c.ch", "a@-b.ch", "ä@b.ch",
        f"{'a' * 250}@b.ch",
    ],
    ids=[
        "no-at", "no-local", "no-domain", "two-ats", "space", "leading-hyphen", "non-ascii",
        "255-chars",
    ],
)  # fmt: skip
def test_a_bad_email_address_is_refused(address: str) -> None:
    assert refuses("mail.address_created", address=address)


def test_a_cancel_reason_is_at_most_two_hundred_characters() -> None:
    assert not refuses("quota.cancel_change", reason="x" * 200)
    assert refuses("quota.cancel_change", reason="x" * 201)


def test_a_service_mail_may_be_outside_a_ksuite_or_in_one() -> None:
    assert not refuses("mail.service_provisioned", ksuite_id=None)
    assert not refuses("mail.service_provisioned", ksuite_id="ks-1")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.parametrize("task", sorted(INBOUND))
@settings(max_examples=150, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=30), json_values, max_size=12))
def test_arbitrary_json_is_refused_only_by_a_validation_error(
    task: str, payload: dict[str, Any]
) -> None:
    with contextlib.suppress(ValidationError):
        schema(task).model_validate(payload)


@pytest.mark.parametrize("task", sorted(INBOUND))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_valid_payload_with_one_field_replaced_by_junk_never_crashes(
    task: str, data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(sorted(VALID[task])))
    payload = {**VALID[task], field: data.draw(json_values)}
    with contextlib.suppress(ValidationError):
        schema(task).model_validate(payload)


def _addresses(count: int) -> list[str]:
    return [f"user{n}@b.ch" for n in range(count)]


def test_a_snapshot_of_ten_thousand_addresses_is_accepted() -> None:
    assert not refuses("mail.addresses_snapshot", addresses=_addresses(10_000))


def test_a_snapshot_of_ten_thousand_and_one_addresses_is_refused() -> None:
    assert refuses("mail.addresses_snapshot", addresses=_addresses(10_001))


def test_a_snapshot_may_list_no_address_at_all() -> None:
    assert not refuses("mail.addresses_snapshot", addresses=[])


def test_a_snapshot_address_of_254_characters_is_accepted_and_of_255_refused() -> None:
    assert not refuses("mail.addresses_snapshot", addresses=[f"{'a' * 64}@{'b' * 186}.ch"])
    assert refuses("mail.addresses_snapshot", addresses=[f"{'a' * 64}@{'b' * 187}.ch"])


@pytest.mark.parametrize(
    "addresses",
    ["a@b.ch", ["a@b.ch", "nobody"], ["a b@c.ch"], [7], [None], {"a@b.ch": 1}],
    ids=["a-string", "one-bad", "space", "int", "null", "object"],
)
def test_a_snapshot_with_any_bad_address_is_refused_whole(addresses: object) -> None:
    assert refuses("mail.addresses_snapshot", addresses=addresses)


@pytest.mark.parametrize(
    "when",
    [
        "2026-11-24T03:00:00",
        "2026-11-24",
        "1999-12-31T23:59:59Z",
        "2200-01-01T00:00:01Z",
        1732442400,
    ],
    ids=["no-offset", "date-only", "before-2000", "after-2200", "epoch-number"],
)
def test_a_snapshot_time_must_be_a_bounded_iso_8601_time_with_an_offset(when: object) -> None:
    assert refuses("mail.addresses_snapshot", taken_at=when)

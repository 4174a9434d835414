"""The benchmark's workload has the mix issue #5 asks for, and consistent ids."""

from __future__ import annotations

from collections import Counter

from bench.workload import generate
from events.inbound import INBOUND


def test_the_mix_and_the_message_count() -> None:
    workload = generate("t", mails=1000, orders=10_000)
    kinds = Counter(workload.kinds.values())
    assert abs(kinds["raise"] / 10_000 - 0.70) < 0.02
    for kind in ("paid_before", "decrease"):
        assert abs(kinds[kind] / 10_000 - 0.10) < 0.015
    for kind in ("refused", "duplicate"):
        assert abs(kinds[kind] / 10_000 - 0.05) < 0.01
    expected = sum({"raise": 2, "paid_before": 2, "decrease": 1, "refused": 1,
                    "duplicate": 4}[k] * n for k, n in kinds.items())  # fmt: skip
    assert len(workload.messages) == expected


def test_every_message_is_valid_and_orders_chain_their_limits() -> None:
    workload = generate("t", mails=3, orders=60, mail_tag="m", first_mail=5)
    limits: dict[str, int] = {}
    for m in workload.messages:
        INBOUND[m.name].model.model_validate(m.payload)
        if m.name != "quota.request_change" or workload.kinds[m.order_id] == "refused":
            continue
        mail = str(m.payload["service_mail_id"])
        assert mail in {"sm-m-5", "sm-m-6", "sm-m-7"}
        if limits.get(mail) != m.payload["new_address_limit"]:  # not the duplicate
            assert m.payload["expected_address_limit"] == limits.get(mail, 10)
        limits[mail] = int(str(m.payload["new_address_limit"]))


def test_payments_come_after_their_request_except_paid_before() -> None:
    workload = generate("t", mails=50, orders=500)
    first_request: dict[str, int] = {}
    for n, m in enumerate(workload.messages):
        if not m.payment:
            first_request.setdefault(m.order_id, n)
    for n, m in enumerate(workload.messages):
        if m.payment:
            before = workload.kinds[m.order_id] == "paid_before"
            assert (n < first_request[m.order_id]) is before

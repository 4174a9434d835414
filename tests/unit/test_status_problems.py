"""What `quota-worker status` names as a problem, from a snapshot's figures."""

from __future__ import annotations

from worker.ops.queries import Status, Thresholds, problems


def _status(**kw: object) -> Status:
    status = Status({"quota.orders": 0}, 0, {"w@h": 1}, {}, None, 0, None, [], 0, 0)
    for name, value in kw.items():
        setattr(status, name, value)
    return status


def test_a_healthy_snapshot_has_no_problem() -> None:
    assert problems(_status(), Thresholds()) == []


def test_a_reused_payment_id_is_a_problem_whatever_the_dead_letter_threshold() -> None:
    [problem] = problems(_status(payment_id_conflicts=2), Thresholds(max_dead_letters=10))
    assert problem.startswith("2 payments reuse a payment_id with another order")


def test_service_mails_outside_their_plan_are_a_problem_naming_the_first_few() -> None:
    examples = [{"id": "sm-1", "why": "limit 60 is above the premium maximum 50"}]
    [problem] = problems(_status(outside_plan=3, outside_plan_examples=examples), Thresholds())
    assert problem.startswith("3 Service Mails are outside their plan's bounds")
    assert "sm-1: limit 60 is above the premium maximum 50 and 2 more" in problem

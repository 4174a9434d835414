"""The plan table: the contract's defaults, custom tables, and clear refusals."""

from __future__ import annotations

import pytest

from domain.plans import InvalidPlanTable, PlanTable


def test_the_default_table_is_the_contracts() -> None:
    plans = PlanTable.default()
    assert (plans["starter"].min, plans["starter"].max, plans["starter"].upgrades_to) == (
        1,
        1,
        "premium",
    )
    assert (plans["premium"].min, plans["premium"].max, plans["premium"].upgrades_to) == (
        5,
        10000,
        None,
    )


def test_a_custom_table_is_read_from_json() -> None:
    plans = PlanTable.from_json('{"basic": {"min": 2, "max": 50}}')
    assert (
        plans.names() == ["basic"] and plans["basic"].allows(50) and not plans["basic"].allows(51)
    )


def test_a_starter_asked_above_its_maximum_moves_to_the_plan_it_upgrades_to() -> None:
    assert PlanTable.default().target_for("starter", 8).name == "premium"


def test_a_starter_asked_within_its_bounds_stays_a_starter() -> None:
    assert PlanTable.default().target_for("starter", 0).name == "starter"


def test_a_premium_never_moves_back_to_starter() -> None:
    assert PlanTable.default().target_for("premium", 1).name == "premium"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("{}", "non-empty"),
        ("[]", "non-empty"),
        ('{"p": {"min": 9, "max": 5}}', "min 9 is above max 5"),
        ('{"p": {"min": -1, "max": 5}}', "'min' must be a non-negative integer"),
        ('{"p": {"min": 1.5, "max": 5}}', "'min' must be a non-negative integer"),
        ('{"p": {"min": true, "max": 5}}', "'min' must be a non-negative integer"),
        ('{"p": {"min": 1}}', "'max' must be a non-negative integer"),
        ('{"p": {"min": 1, "max": 5, "price": 3}}', "unknown keys"),
        ('{"p": [1, 5]}', "must be an object"),
        ('{"p": {"min": 1, "max": 1, "upgrades_to": "gold"}}', "unknown plan 'gold'"),
        (
            '{"p": {"min": 1, "max": 9, "upgrades_to": "q"}, "q": {"min": 1, "max": 5}}',
            "not higher",
        ),
    ],
    ids=[
        "not-json", "empty", "list", "min-above-max", "negative", "float", "bool", "no-max",
        "unknown-key", "not-object", "unknown-upgrade", "upgrade-not-larger",
    ],
)  # fmt: skip
def test_a_bad_plan_table_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(InvalidPlanTable, match=message):
        PlanTable.from_json(text)

"""Plan bounds: the minimum and maximum address limit of each offer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class InvalidPlanTable(ValueError):
    """The plan table given by configuration cannot be used."""


@dataclass(frozen=True)
class Plan:
    name: str
    min: int
    max: int
    upgrades_to: str | None = None

    def allows(self, limit: int) -> bool:
        return self.min <= limit <= self.max


DEFAULT_PLANS: dict[str, dict[str, Any]] = {
    "starter": {"min": 1, "max": 1, "upgrades_to": "premium"},
    "premium": {"min": 5, "max": 10000},
}


@dataclass(frozen=True)
class PlanTable:
    plans: dict[str, Plan]

    def __getitem__(self, name: str) -> Plan:
        return self.plans[name]

    def __contains__(self, name: object) -> bool:
        return name in self.plans

    def names(self) -> list[str]:
        return sorted(self.plans)

    def target_for(self, current: str, new_limit: int) -> Plan:
        """The plan a Service Mail has after moving to `new_limit`.

        A limit above the current plan's maximum is an upgrade: `upgrades_to` is
        followed, plan after plan, until one admits it or the chain ends (the last
        plan's bounds then refuse it). Everything else stays on the current plan. The
        chain ends: each plan upgrades to one with a higher maximum (`parse`).
        """
        plan = self.plans[current]
        while new_limit > plan.max and plan.upgrades_to is not None:
            plan = self.plans[plan.upgrades_to]
        return plan

    @classmethod
    def default(cls) -> PlanTable:
        return cls.parse(DEFAULT_PLANS)

    @classmethod
    def from_json(cls, text: str) -> PlanTable:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidPlanTable(f"QUOTA_PLANS is not valid JSON: {exc}") from exc
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: object) -> PlanTable:
        if not isinstance(raw, dict) or not raw:
            raise InvalidPlanTable("the plan table must be a non-empty JSON object")
        plans = {name: _parse_plan(name, spec) for name, spec in raw.items()}
        for plan in plans.values():
            if plan.upgrades_to is None:
                continue
            if plan.upgrades_to not in plans:
                raise InvalidPlanTable(
                    f"plan {plan.name!r} upgrades to unknown plan {plan.upgrades_to!r}"
                )
            if plans[plan.upgrades_to].max <= plan.max:
                raise InvalidPlanTable(
                    f"plan {plan.name!r} upgrades to {plan.upgrades_to!r}, "
                    "whose maximum is not higher"
                )
        return cls(plans)


def _parse_plan(name: object, spec: object) -> Plan:
    if not isinstance(name, str) or not name:
        raise InvalidPlanTable(f"plan name {name!r} must be a non-empty string")
    if not isinstance(spec, dict):
        raise InvalidPlanTable(f"plan {name!r} must be an object with 'min' and 'max'")
    unknown = set(spec) - {"min", "max", "upgrades_to"}
    if unknown:
        raise InvalidPlanTable(f"plan {name!r} has unknown keys: {sorted(unknown)}")
    low, high, upgrades_to = spec.get("min"), spec.get("max"), spec.get("upgrades_to")
    for key, value in (("min", low), ("max", high)):
        if type(value) is not int or value < 0:
            raise InvalidPlanTable(f"plan {name!r}: {key!r} must be a non-negative integer")
    assert isinstance(low, int) and isinstance(high, int)
    if low > high:
        raise InvalidPlanTable(f"plan {name!r}: min {low} is above max {high}")
    if upgrades_to is not None and not isinstance(upgrades_to, str):
        raise InvalidPlanTable(f"plan {name!r}: 'upgrades_to' must be a plan name")
    return Plan(name=name, min=low, max=high, upgrades_to=upgrades_to)

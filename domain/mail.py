"""The Service Mail: its limit B, its addresses in use A, and the rules of changing B."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain import commands, errors
from domain.events import QuotaChanged
from domain.plans import Plan, PlanTable


class ChangeOfLimit(Protocol):
    """What the Service Mail reads of the change it applies (domain/model.py's)."""

    request_id: str
    order_id: str
    account_id: str
    new_address_limit: int


@dataclass
class ServiceMail:
    id: str
    account_id: str
    plan: str
    address_limit: int
    ksuite_id: str | None = None
    version: int = 0
    addresses_in_use: int = 0
    # Why the limit is outside its plan's bounds, as a provisioning left it; None within.
    outside_plan: str | None = None

    @classmethod
    def provisioned(cls, cmd: commands.ProvisionServiceMail, plans: PlanTable) -> ServiceMail:
        mail = cls(cmd.service_mail_id, cmd.account_id, cmd.plan, cmd.address_limit, cmd.ksuite_id)
        mail.outside_plan = mail._outside(plans[mail.plan])
        return mail

    def provision_again(self, cmd: commands.ProvisionServiceMail, plans: PlanTable) -> None:
        """The platform's owner, plan and kSuite, which are the truth; the limit changes only
        through requests, so one now outside its plan's bounds is recorded, not changed."""
        self.account_id, self.plan, self.ksuite_id = cmd.account_id, cmd.plan, cmd.ksuite_id
        self.outside_plan = self._outside(plans[self.plan])

    def _outside(self, plan: Plan) -> str | None:
        if self.address_limit < plan.min:
            return f"limit {self.address_limit} is below the {plan.name} minimum {plan.min}"
        if self.address_limit > plan.max:
            return f"limit {self.address_limit} is above the {plan.name} maximum {plan.max}"
        return None

    def check_change(
        self, account_id: str, expected_limit: int, new_limit: int, plans: PlanTable
    ) -> Plan:
        """The plan after the change, or the named refusal."""
        self.check_changeable_by(account_id)
        if new_limit == self.address_limit:
            raise errors.NoChange(f"The address limit is already {new_limit}.")
        if expected_limit != self.address_limit:
            raise errors.StaleRequest(
                f"The order was made for a limit of {expected_limit}, but the limit is now "
                f"{self.address_limit}; please review the order again."
            )
        target = plans.target_for(self.plan, new_limit)
        if new_limit < target.min:
            raise errors.BelowPlanMinimum(
                f"The {target.name} offer holds at least {target.min} addresses."
            )
        if new_limit > target.max:
            raise errors.AbovePlanMaximum(
                f"The {target.name} offer holds at most {target.max} addresses."
            )
        if new_limit < self.addresses_in_use:
            raise errors.AddressesInUse(
                f"{self.addresses_in_use} addresses exist; delete "
                f"{self.addresses_in_use - new_limit} before lowering the limit to {new_limit}."
            )
        return target

    def check_changeable_by(self, account_id: str) -> None:
        if account_id != self.account_id:
            raise errors.NotOwner("This Service Mail belongs to another account.")
        if self.ksuite_id is not None:
            raise errors.ManagedByKSuite(
                "This Service Mail is part of a kSuite; its quota follows the kSuite offer."
            )

    def apply_change(self, change: ChangeOfLimit, plan: Plan, now: datetime) -> QuotaChanged:
        previous = self.address_limit
        self.address_limit = change.new_address_limit
        self.plan = plan.name
        self.outside_plan = None  # checked against this plan's bounds
        self.version += 1
        return QuotaChanged(
            request_id=change.request_id,
            order_id=change.order_id,
            account_id=change.account_id,
            service_mail_id=self.id,
            previous_address_limit=previous,
            address_limit=self.address_limit,
            addresses_in_use=self.addresses_in_use,
            plan=self.plan,
            version=self.version,
            applied_at=now,
        )

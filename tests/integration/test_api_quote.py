"""GET /v1/service-mails/{id}/quote: the worker's own rules, run on what the database holds,
changing nothing; and the same request sent afterwards is decided the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.integration.shop import Shop
from worker.adapters import tables as t
from worker.bootstrap import Container


def _quote(api: TestClient, mail: str, account: str, new: int) -> dict[str, Any]:
    answer = api.get(
        f"/v1/service-mails/{mail}/quote", params={"account_id": account, "new_address_limit": new}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_raise_is_allowed_with_every_field(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    shop.add_addresses(mail, 4)
    assert _quote(api, mail, account, 20) == {
        "allowed": True,
        "reason": None,
        "detail": "The address limit can be raised from 10 to 20.",
        "plan": "premium",
        "address_limit": 10,
        "new_address_limit": 20,
        "addresses_in_use": 4,
    }


def test_a_starter_raised_above_its_maximum_is_an_upgrade_to_premium(
    app: Container, api: TestClient
) -> None:
    mail, account = Shop(app).provision(plan="starter", limit=1)
    body = _quote(api, mail, account, 8)
    assert (body["allowed"], body["reason"], body["plan"]) == (True, None, "premium")
    assert (
        body["detail"]
        == "The address limit can be raised from 1 to 8, moving to the premium offer."
    )


def test_a_decrease_down_to_a_is_allowed(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    shop.add_addresses(mail, 6)
    body = _quote(api, mail, account, 6)
    assert body["allowed"] and body["detail"] == "The address limit can be lowered from 10 to 6."


def _not_owner(shop: Shop) -> tuple[str, str, int]:
    mail, _ = shop.provision(limit=10)
    return mail, "acc-someone-else", 20


def _ksuite(shop: Shop) -> tuple[str, str, int]:
    return (*shop.provision(limit=10, ksuite_id="ks-9"), 20)


def _no_change(shop: Shop) -> tuple[str, str, int]:
    return (*shop.provision(limit=10), 10)


def _starter_to_three(shop: Shop) -> tuple[str, str, int]:
    return (*shop.provision(plan="starter", limit=1), 3)


def _premium_to_four(shop: Shop) -> tuple[str, str, int]:
    return (*shop.provision(limit=10), 4)


def _above_maximum(shop: Shop) -> tuple[str, str, int]:
    return (*shop.provision(limit=10), 10_001)


def _below_a(shop: Shop) -> tuple[str, str, int]:
    mail, account = shop.provision(limit=10)
    shop.add_addresses(mail, 8)
    return mail, account, 6


def _in_progress(shop: Shop) -> tuple[str, str, int]:
    mail, account = shop.provision(limit=10)
    shop.send(shop.request(mail, account, expected=10, new=20))
    return mail, account, 30


CASES: dict[str, tuple[Callable[[Shop], tuple[str, str, int]], str, str]] = {
    "not_owner": (_not_owner, "not_owner", "This Service Mail belongs to another account."),
    "ksuite": (
        _ksuite,
        "managed_by_ksuite",
        "This Service Mail is part of a kSuite; its quota follows the kSuite offer.",
    ),
    "no_change": (_no_change, "no_change", "The address limit is already 10."),
    "starter_to_3": (
        _starter_to_three,
        "below_plan_minimum",
        "The premium offer holds at least 5 addresses.",
    ),
    "premium_to_4": (
        _premium_to_four,
        "below_plan_minimum",
        "The premium offer holds at least 5 addresses.",
    ),
    "above_max": (
        _above_maximum,
        "above_plan_maximum",
        "The premium offer holds at most 10000 addresses.",
    ),
    "below_a": (
        _below_a,
        "addresses_in_use",
        "8 addresses exist; delete 2 before lowering the limit to 6.",
    ),
    "in_progress": (
        _in_progress,
        "change_in_progress",
        "Another change of this Service Mail awaits payment; complete or cancel it first.",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refused_change_is_quoted_with_the_reason_and_sentence_the_worker_gives(
    app: Container, api: TestClient, case: str
) -> None:
    """The quote's refusal is the one the worker then gives the same request."""
    arrange, reason, detail = CASES[case]
    shop = Shop(app)
    mail, account, new = arrange(shop)
    body = _quote(api, mail, account, new)
    assert (body["allowed"], body["reason"], body["detail"]) == (False, reason, detail)
    limit = shop.mail(mail).address_limit
    request = shop.request(mail, account, expected=limit, new=new)
    shop.send(request)
    decided = shop.change(request.order_id)
    assert (decided.state, decided.reason, decided.detail) == ("rejected", reason, detail)


def test_a_refused_upgrade_names_the_plan_whose_bounds_refused_it(
    app: Container, api: TestClient
) -> None:
    mail, account = Shop(app).provision(plan="starter", limit=1)
    assert _quote(api, mail, account, 3)["plan"] == "premium"


def test_an_allowed_quote_is_then_accepted_by_the_worker(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(plan="starter", limit=1)
    assert _quote(api, mail, account, 8)["allowed"]
    request = shop.request(mail, account, expected=1, new=8)
    shop.send(request)
    shop.send(shop.payment(request.order_id))
    assert (shop.mail(mail).address_limit, shop.mail(mail).plan) == (8, "premium")


def _counts(app: Container) -> list[int]:
    tables = (t.quota_changes, t.outbox, t.processed_messages, t.transitions, t.limit_history)
    with app.database.engine.connect() as conn:
        return [conn.execute(select(func.count()).select_from(x)).scalar_one() for x in tables]


def test_a_quote_changes_nothing(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    before, row = _counts(app), shop.mail(mail)
    _quote(api, mail, account, 20)
    _quote(api, mail, account, 10)
    assert _counts(app) == before and shop.mail(mail) == row


def test_a_quote_for_an_unknown_service_mail_is_404(api: TestClient) -> None:
    answer = api.get("/v1/service-mails/sm-none/quote?account_id=acc-1&new_address_limit=5")
    assert answer.status_code == 404 and answer.json()["error"] == "unknown_service_mail"


@pytest.mark.parametrize(
    "query",
    ["account_id=acc-1", "new_address_limit=5", "account_id=acc-1&new_address_limit=-1",
     "account_id=acc-1&new_address_limit=five", "account_id=a%20b&new_address_limit=5"],
)  # fmt: skip
def test_a_missing_or_bad_parameter_is_422_invalid_request(
    app: Container, api: TestClient, query: str
) -> None:
    mail, _ = Shop(app).provision()
    answer = api.get(f"/v1/service-mails/{mail}/quote?{query}")
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request" and answer.json()["detail"]

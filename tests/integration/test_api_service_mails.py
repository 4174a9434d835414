"""GET /v1/service-mails/{id}: A, B, the plan's bounds and the change awaiting payment, read
from the real database as the bus left it; and who may ask."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from fastapi.testclient import TestClient

from domain import commands
from tests.integration.api_client import OPERATE_TOKEN, READ_TOKEN, bearer
from tests.integration.conftest import Clock
from tests.integration.shop import Shop
from worker.bootstrap import Container


def test_a_service_mail_answers_every_field(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    shop.add_addresses(mail, 3)
    answer = api.get(f"/v1/service-mails/{mail}")
    assert answer.status_code == 200
    assert answer.json() == {
        "service_mail_id": mail,
        "account_id": account,
        "plan": "premium",
        "address_limit": 10,
        "addresses_in_use": 3,
        "ksuite_id": None,
        "version": 0,
        "plan_min_limit": 5,
        "plan_max_limit": 10000,
        "pending_change": None,
    }


def test_a_starter_in_a_ksuite_shows_its_plan_bounds_and_ksuite(
    app: Container, api: TestClient
) -> None:
    mail, _ = Shop(app).provision(plan="starter", limit=1, ksuite_id="ks-1")
    body = api.get(f"/v1/service-mails/{mail}").json()
    assert (body["plan"], body["plan_min_limit"], body["plan_max_limit"]) == ("starter", 1, 1)
    assert body["ksuite_id"] == "ks-1"


def test_the_change_awaiting_payment_is_shown_until_it_is_paid(
    app: Container, api: TestClient, clock: Clock
) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20, amount=1500, currency="CHF")
    shop.send(request)
    pending = api.get(f"/v1/service-mails/{mail}").json()["pending_change"]
    assert pending == {
        "request_id": request.request_id,
        "order_id": request.order_id,
        "new_address_limit": 20,
        "amount_due": 1500,
        "currency": "CHF",
        "expires_at": pending["expires_at"],
    }
    assert datetime.fromisoformat(pending["expires_at"]) == clock() + timedelta(seconds=3600)
    shop.send(shop.payment(request.order_id))
    body = api.get(f"/v1/service-mails/{mail}").json()
    assert (body["pending_change"], body["address_limit"], body["version"]) == (None, 20, 1)


def test_an_ended_change_is_not_pending(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20)
    shop.send(request)
    shop.send(commands.CancelQuotaChange(request.order_id, "left the cart"))
    assert api.get(f"/v1/service-mails/{mail}").json()["pending_change"] is None


def test_an_unknown_service_mail_is_404_unknown_service_mail(api: TestClient) -> None:
    answer = api.get("/v1/service-mails/sm-nobody-has")
    assert answer.status_code == 404
    assert answer.json() == {
        "error": "unknown_service_mail",
        "detail": "No Service Mail sm-nobody-has is known.",
    }


def test_an_id_outside_the_contracts_alphabet_is_422_invalid_request(api: TestClient) -> None:
    answer = api.get("/v1/service-mails/sm%20one")
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request"


def test_no_token_is_401_and_nothing_is_read(app: Container, api: TestClient) -> None:
    mail, _ = Shop(app).provision()
    answer = api.get(f"/v1/service-mails/{mail}", headers={"Authorization": ""})
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    assert "account_id" not in answer.text


def test_an_unknown_token_is_401(app: Container, api: TestClient) -> None:
    mail, _ = Shop(app).provision()
    answer = api.get(f"/v1/service-mails/{mail}", headers=bearer(READ_TOKEN + "x"))
    assert answer.status_code == 401


def test_an_operate_token_may_read_too(app: Container, api: TestClient) -> None:
    mail, _ = Shop(app).provision()
    assert api.get(f"/v1/service-mails/{mail}", headers=bearer(OPERATE_TOKEN)).status_code == 200


def test_the_probes_and_the_document_need_no_token(api: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert api.get(path, headers={"Authorization": ""}).status_code == 200, path


def test_each_request_is_logged_with_the_tokens_name_never_the_token(
    app: Container, api: TestClient
) -> None:
    mail, account = Shop(app).provision()
    with structlog.testing.capture_logs() as logs:
        api.get(f"/v1/service-mails/{mail}/quote?account_id={account}&new_address_limit=20")
        api.get(f"/v1/service-mails/{mail}", headers=bearer("not-a-token-at-all"))
    lines = [line for line in logs if line["event"] == "api_request"]
    assert [(line["token_name"], line["status"]) for line in lines] == [
        ("checkout", 200),
        (None, 401),
    ]
    assert lines[0]["path"] == f"/v1/service-mails/{mail}/quote"  # no query string
    assert READ_TOKEN not in repr(logs) and "not-a-token-at-all" not in repr(logs)

"""GET /v1/orders/{id} and /v1/requests/{id}: a change, its payments and its events, after
each ending, read from the real database as the bus left it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from domain import commands
from tests.integration.conftest import Clock
from tests.integration.shop import Shop
from worker.bootstrap import Container


def _events(shop: Shop, order_id: str) -> list[dict[str, Any]]:
    """The order's events as the stream carries them: id, type and time."""
    return [
        {"id": e["id"], "type": e["type"], "time": datetime.fromisoformat(e["time"])}
        for e in shop.events(order_id=order_id)
    ]


def _with_times(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**e, "time": datetime.fromisoformat(e["time"])} for e in body["events"]]


def test_an_applied_order_answers_every_field_its_payment_and_its_events(
    app: Container, api: TestClient
) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20, amount=1500, currency="CHF")
    payment = shop.payment(request.order_id)
    shop.send(request)
    shop.send(payment)
    body = api.get(f"/v1/orders/{request.order_id}").json()
    assert {k: v for k, v in body.items() if k != "events"} == {
        "request_id": request.request_id,
        "order_id": request.order_id,
        "service_mail_id": mail,
        "account_id": account,
        "state": "applied",
        "reason": None,
        "detail": None,
        "new_address_limit": 20,
        "amount_due": 1500,
        "currency": "CHF",
        "expires_at": body["expires_at"],
        "payments": [
            {
                "payment_id": payment.payment_id,
                "amount": 1500,
                "currency": "CHF",
                "status": "used",
                "refund_reason": None,
            }
        ],
    }
    assert [e["type"] for e in body["events"]] == [
        "mail.quota.change.accepted",
        "mail.quota.changed",
    ]
    assert _with_times(body) == _events(shop, request.order_id)


def test_a_request_answers_as_its_order_does(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20)
    shop.send(request)
    by_request = api.get(f"/v1/requests/{request.request_id}")
    assert by_request.status_code == 200
    assert by_request.json() == api.get(f"/v1/orders/{request.order_id}").json()


def test_an_order_awaiting_payment_shows_when_it_expires(
    app: Container, api: TestClient, clock: Clock
) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20)
    shop.send(request)
    body = api.get(f"/v1/orders/{request.order_id}").json()
    assert (body["state"], body["payments"]) == ("awaiting_payment", [])
    assert datetime.fromisoformat(body["expires_at"]) > clock()
    assert [e["type"] for e in body["events"]] == ["mail.quota.change.accepted"]


def test_a_rejected_order_gives_its_reason_and_sentence(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=4)
    shop.send(request)
    body = api.get(f"/v1/orders/{request.order_id}").json()
    assert (body["state"], body["reason"]) == ("rejected", "below_plan_minimum")
    assert body["detail"] == "The premium offer holds at least 5 addresses."
    assert [e["type"] for e in body["events"]] == ["mail.quota.change.rejected"]


def test_a_wrong_payment_is_refunded_and_shown_so(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20, amount=1500)
    shop.send(request)
    payment = shop.payment(request.order_id, amount=900)
    shop.send(payment)
    body = api.get(f"/v1/orders/{request.order_id}").json()
    assert (body["state"], body["reason"]) == ("rejected", "payment_mismatch")
    assert body["payments"] == [
        {
            "payment_id": payment.payment_id,
            "amount": 900,
            "currency": "CHF",
            "status": "refunded",
            "refund_reason": "payment_mismatch",
        }
    ]
    assert [e["type"] for e in body["events"]] == [
        "mail.quota.change.accepted",
        "mail.quota.change.rejected",
        "mail.quota.refund.required",
    ]


def test_a_cancelled_order_and_a_late_payment_for_it(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20)
    shop.send(request)
    shop.send(commands.CancelQuotaChange(request.order_id, "left the cart"))
    shop.send(shop.payment(request.order_id))
    body = api.get(f"/v1/orders/{request.order_id}").json()
    assert body["state"] == "cancelled"
    assert [(p["status"], p["refund_reason"]) for p in body["payments"]] == [
        ("refunded", "change_cancelled")
    ]
    assert [e["type"] for e in body["events"]][-2:] == [
        "mail.quota.change.cancelled",
        "mail.quota.refund.required",
    ]


def test_an_expired_order(app: Container, api: TestClient, clock: Clock) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20)
    shop.send(request)
    clock.advance(seconds=3600 + 1)
    app.bus.sweep()
    body = api.get(f"/v1/orders/{request.order_id}").json()
    assert body["state"] == "expired"
    assert [e["type"] for e in body["events"]][-1] == "mail.quota.change.expired"


def test_a_free_change_is_applied_with_no_payment(app: Container, api: TestClient) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=6, amount=0)
    shop.send(request)
    body = api.get(f"/v1/orders/{request.order_id}").json()
    assert (body["state"], body["payments"], body["expires_at"]) == ("applied", [], None)
    assert [e["type"] for e in body["events"]] == ["mail.quota.changed"]


def test_unknown_ids_are_404_unknown_order_and_unknown_request(api: TestClient) -> None:
    order = api.get("/v1/orders/ord-none")
    request = api.get("/v1/requests/req-none")
    assert (order.status_code, order.json()["error"]) == (404, "unknown_order")
    assert (request.status_code, request.json()["error"]) == (404, "unknown_request")


def test_a_payment_held_before_its_request_is_not_an_order_yet(
    app: Container, api: TestClient
) -> None:
    shop = Shop(app)
    shop.send(shop.payment("ord-early-only"))
    assert api.get("/v1/orders/ord-early-only").status_code == 404

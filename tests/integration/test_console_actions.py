"""The console's lists and its actions: filters and order, the trail, held payments, replay
and discard, cancel and expire, each recorded with the token's name, and each refused
without its CSRF token or with a read token, changing nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.helpers import new_id
from tests.integration.api_client import OPERATE_TOKEN, READ_TOKEN
from tests.integration.conftest import Clock
from tests.integration.console_client import csrf_of, sign_in
from tests.integration.shop import Shop
from worker.adapters import tables as t
from worker.api.app import create_app
from worker.bootstrap import Container
from worker.ops import dead_letters


@pytest.fixture
def console(app: Container, clock: Clock) -> Iterator[TestClient]:
    """The console, publishing replays to an in-memory broker (no worker must run them)."""
    api = create_app(app, now=clock)
    api.state.celery = Celery("console-test", broker="memory://", set_as_current=False)
    with TestClient(api) as client:
        yield client


@pytest.fixture
def operator(console: TestClient) -> TestClient:
    assert sign_in(console, OPERATE_TOKEN).status_code == 303
    return console


def _letter(app: Container, task: str = "quota.request_change", **kwargs: Any) -> int:
    message_id = new_id("msg")
    body = json.dumps({"args": [], "kwargs": kwargs})
    app.bus.dead_letter(message_id=message_id, task=task, body=body, error="validation: test")
    return int(Shop(app).dead_letters(message_id)[0].id)


def _letter_row(app: Container, letter_id: int) -> Any:
    with app.database.engine.connect() as conn:
        return conn.execute(select(t.dead_letters).where(t.dead_letters.c.id == letter_id)).one()


def _post(client: TestClient, page: str, action: str, **fields: str) -> Any:
    csrf = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf": csrf, **fields}, follow_redirects=False)


def _stuck(app: Container) -> Any:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    request = shop.request(mail, account, expected=10, new=20)
    shop.send(request)
    return shop, request


def test_changes_are_listed_oldest_wait_first_and_filtered(
    app: Container, operator: TestClient, clock: Clock
) -> None:
    shop = Shop(app)
    mail, account = shop.provision(limit=10)
    first = shop.request(mail, account, expected=10, new=20)
    shop.send(first)
    shop.send(shop.payment(first.order_id))  # applied: limit 20
    clock.advance(minutes=1)
    older = shop.request(mail, account, expected=20, new=30)
    shop.send(older)
    other_mail, other_account = shop.provision(limit=10)
    clock.advance(minutes=1)
    shop.send(shop.request(other_mail, other_account, expected=10, new=15))
    listed = operator.get(f"/console/changes?state=&service_mail={mail}").text
    shown = re.findall(r'href="/console/changes/([^"]+)"', listed)
    assert shown == [first.request_id, older.request_id]
    awaiting = operator.get(f"/console/changes?service_mail={mail}").text
    assert older.request_id in awaiting and first.request_id not in awaiting
    assert operator.get("/console/changes?state=nonsense").status_code == 400


def test_a_changes_trail_shows_its_messages_transitions_and_events(
    app: Container, operator: TestClient
) -> None:
    _shop, request = _stuck(app)
    html = operator.get(f"/console/changes/{request.order_id}").text
    assert request.request_id in html and "awaiting_payment" in html
    assert "message test" in html and "event mail.quota.change.accepted" in html
    assert operator.get("/console/changes/req-nobody").status_code == 404


def test_held_payments_are_listed_with_their_order(app: Container, operator: TestClient) -> None:
    shop = Shop(app)
    payment = shop.payment(new_id("ord"))
    shop.send(payment)
    html = operator.get("/console/payments").text
    assert payment.payment_id in html and payment.order_id in html


def test_a_replay_is_sent_and_recorded_with_the_tokens_name(
    app: Container, operator: TestClient
) -> None:
    letter = _letter(app, account_id=new_id("acc"))
    answer = _post(
        operator, f"/console/dead-letters/{letter}", f"/console/dead-letters/{letter}/replay"
    )
    assert answer.status_code == 303
    row = _letter_row(app, letter)
    assert (row.status, row.resolution) == ("replayed", f"oncall: replayed as replay-{letter}")
    with operator.app.state.celery.connection_for_read() as conn:
        sent = conn.SimpleQueue("quota.orders").get(timeout=2)
    assert (
        sent.headers["id"] == f"replay-{letter}" and sent.headers["task"] == "quota.request_change"
    )
    assert "Sent again" in operator.get(answer.headers["location"]).text


def test_a_discard_records_the_reason_with_the_tokens_name(
    app: Container, operator: TestClient
) -> None:
    letter = _letter(app)
    page = f"/console/dead-letters/{letter}"
    assert _post(operator, page, f"{page}/discard", reason="  ").status_code == 422
    assert _letter_row(app, letter).status == "stored"
    assert _post(operator, page, f"{page}/discard", reason="test data").status_code == 303
    row = _letter_row(app, letter)
    assert (row.status, row.resolution) == ("discarded", "oncall: test data")


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    app: Container, operator: TestClient
) -> None:
    letter = _letter(app)
    action = f"/console/dead-letters/{letter}/discard"
    for fields in ({"reason": "r"}, {"reason": "r", "csrf": "0" * 64}):
        refused = operator.post(action, data=fields)
        assert refused.status_code == 403 and "Refused" in refused.text
    csrf = csrf_of(operator.get("/console/").text)
    cross = operator.post(action, data={"reason": "r", "csrf": csrf},
                          headers={"Origin": "https://evil.example"})  # fmt: skip
    assert cross.status_code == 403
    assert _letter_row(app, letter).status == "stored"


def test_a_read_session_is_refused_every_action_with_a_403_page(
    app: Container, console: TestClient
) -> None:
    _shop, request = _stuck(app)
    letter = _letter(app)
    sign_in(console, READ_TOKEN)
    page = f"/console/dead-letters/{letter}"
    for action in (f"{page}/replay", f"{page}/discard"):
        refused = _post(console, page, action, reason="r")
        assert refused.status_code == 403 and "acting needs operate" in refused.text
    trail = f"/console/changes/{request.request_id}"
    for action in (f"{trail}/cancel", f"{trail}/expire"):
        refused = _post(console, trail, action, reason="r")
        assert refused.status_code == 403 and "acting needs operate" in refused.text
    assert _letter_row(app, letter).status == "stored"
    assert Shop(app).change(request.order_id).state == "awaiting_payment"


def test_a_stuck_change_is_cancelled_as_the_operator_named_by_the_token(
    app: Container, operator: TestClient
) -> None:
    shop, request = _stuck(app)
    trail = f"/console/changes/{request.request_id}"
    answer = _post(operator, trail, f"{trail}/cancel", reason="customer called support")
    assert (
        answer.status_code == 303 and "Cancelled" in operator.get(answer.headers["location"]).text
    )
    assert shop.change(request.order_id).state == "cancelled"
    cancelled = shop.events(order_id=request.order_id)[-1]
    assert cancelled["type"] == "mail.quota.change.cancelled"
    assert cancelled["data"]["reason"] == "customer called support"
    assert "by operator:oncall" in operator.get(trail).text


def test_a_stuck_change_is_expired_and_then_offers_nothing_more(
    app: Container, operator: TestClient
) -> None:
    shop, request = _stuck(app)
    trail = f"/console/changes/{request.order_id}"  # found by its order, acted on by request
    action = f"/console/changes/{request.request_id}/expire"
    assert f'action="{action}"' in operator.get(trail).text
    by_order = _post(operator, trail, f"{trail}/expire", reason="by order")
    assert by_order.status_code == 409 and "no change request" in by_order.text
    assert _post(operator, trail, action, reason="payment lost").status_code == 303
    assert shop.change(request.order_id).state == "expired"
    html = operator.get(trail).text
    assert "operator: payment lost" in html and "/expire" not in html
    again = _post(operator, trail, action, reason="twice")
    assert again.status_code == 409 and "not awaiting payment" in again.text


def _sent(client: TestClient) -> Any:
    """The next replay the console published, or None."""
    with client.app.state.celery.connection_for_read() as conn:  # type: ignore[attr-defined]
        queue = conn.SimpleQueue("quota.orders")
        try:
            return queue.get(timeout=0.2)
        except queue.Empty:
            return None


def test_a_letter_discarded_after_a_replay_read_it_is_not_replayed(
    app: Container, console: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay reads the letter stored, a discard wins meanwhile: the replay's conditional
    update finds it discarded, refuses, and sends nothing."""
    letter = _letter(app, account_id=new_id("acc"))
    read = dead_letters.get_dead_letter

    def read_then_discarded(container: Container, letter_id: int) -> Any:
        found = read(container, letter_id)
        monkeypatch.setattr(dead_letters, "get_dead_letter", read)  # once
        dead_letters.discard_dead_letter(container, letter_id, "meanwhile", "other")
        return found

    monkeypatch.setattr(dead_letters, "get_dead_letter", read_then_discarded)
    with pytest.raises(dead_letters.NotReplayable, match="was discarded: other: meanwhile"):
        dead_letters.replay_dead_letter(app, console.app.state.celery, letter, "oncall")  # type: ignore[attr-defined]
    row = _letter_row(app, letter)
    assert (row.status, row.replayed_as) == ("discarded", None)
    assert _sent(console) is None


def test_a_letter_replayed_after_it_was_read_is_not_then_discarded(
    app: Container, console: TestClient
) -> None:
    letter = _letter(app, account_id=new_id("acc"))
    assert dead_letters.get_dead_letter(app, letter)["status"] == "stored"  # type: ignore[index]
    celery = console.app.state.celery  # type: ignore[attr-defined]
    assert dead_letters.replay_dead_letter(app, celery, letter, "first") == f"replay-{letter}"
    with pytest.raises(dead_letters.AlreadyHandled, match="already replayed"):
        dead_letters.discard_dead_letter(app, letter, "too late", "second")
    assert _letter_row(app, letter).status == "replayed"
    with pytest.raises(dead_letters.AlreadyHandled, match="no dead letter"):
        dead_letters.discard_dead_letter(app, 10**12, "none", "second")


def test_discarding_a_letter_replayed_meanwhile_answers_409_with_why(
    app: Container, operator: TestClient
) -> None:
    letter = _letter(app, account_id=new_id("acc"))
    page = f"/console/dead-letters/{letter}"
    csrf = csrf_of(operator.get(page).text)  # the page still offers discard
    dead_letters.replay_dead_letter(app, operator.app.state.celery, letter, "cli")  # type: ignore[attr-defined]
    late = operator.post(f"{page}/discard", data={"csrf": csrf, "reason": "dup"})
    assert late.status_code == 409
    assert f"Not discarded: dead letter {letter} is already replayed" in late.text
    assert _letter_row(app, letter).status == "replayed"


def test_a_cancel_reason_over_the_contracts_200_characters_is_refused(
    app: Container, operator: TestClient
) -> None:
    shop, request = _stuck(app)
    trail = f"/console/changes/{request.request_id}"
    assert 'maxlength="200"' in operator.get(trail).text
    refused = _post(operator, trail, f"{trail}/cancel", reason="x" * 201)
    assert refused.status_code == 422
    assert "The reason has 201 characters: keep it to at most 200." in refused.text
    expire = _post(operator, trail, f"{trail}/expire", reason="x" * 191)
    assert expire.status_code == 422 and "at most 190" in expire.text
    assert shop.change(request.order_id).state == "awaiting_payment"
    assert _post(operator, trail, f"{trail}/cancel", reason="y" * 200).status_code == 303
    cancelled = shop.events(order_id=request.order_id)[-1]
    assert cancelled["data"]["reason"] == "y" * 200


def test_a_form_of_too_many_fields_is_a_400_page(app: Container, operator: TestClient) -> None:
    letter = _letter(app)
    page = f"/console/dead-letters/{letter}"
    csrf = csrf_of(operator.get(page).text)
    fields = [("csrf", csrf), ("reason", "r")] + [(f"f{n}", "x") for n in range(19)]
    answer = operator.post(f"{page}/discard", data=dict(fields))
    assert answer.status_code == 400 and "at most 20 fields" in answer.text
    assert _letter_row(app, letter).status == "stored"


def test_a_letter_id_beyond_bigint_is_no_letter_not_an_error(operator: TestClient) -> None:
    csrf = csrf_of(operator.get("/console/").text)
    for letter_id in (2**63, 10**30, 0):
        assert operator.get(f"/console/dead-letters/{letter_id}").status_code in (404, 422)
        for action in ("replay", "discard"):
            answer = operator.post(f"/console/dead-letters/{letter_id}/{action}",
                                   data={"csrf": csrf, "reason": "r"})  # fmt: skip
            assert answer.status_code in (404, 422), answer.text
    assert operator.get(f"/console/dead-letters/{2**63 - 1}").status_code == 404


def test_an_action_ends_the_change_of_its_request_id_never_one_of_that_order_id(
    app: Container, operator: TestClient
) -> None:
    """Ids are the publishers': one change's request id may be another's order id."""
    shop = Shop(app)
    shared = new_id("id")
    mail, account = shop.provision(limit=10)
    by_order = shop.request(mail, account, expected=10, new=20, order_id=shared)
    shop.send(by_order)  # first, so an either-key lookup would meet it first
    other_mail, other_account = shop.provision(limit=10)
    by_request = shop.request(other_mail, other_account, expected=10, new=30, request_id=shared)
    shop.send(by_request)
    trail = f"/console/changes/{shared}"
    assert f"<dd>{by_request.order_id}</dd>" in operator.get(trail).text
    answer = _post(operator, trail, f"{trail}/cancel", reason="the one asked for")
    assert answer.status_code == 303
    assert shop.change(by_request.order_id).state == "cancelled"
    assert shop.change(by_order.order_id).state == "awaiting_payment"
    html = operator.get(f"/console/changes/{by_order.request_id}").text
    assert f"/console/changes/{by_order.request_id}/expire" in html

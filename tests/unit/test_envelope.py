"""The envelope checks as pure functions: each rule of the contract's "The envelope"."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.adapters import deliveries
from worker.adapters.deliveries import StoredBody, read_redis_item
from worker.entrypoints import envelope
from worker.entrypoints.envelope import Delivery, check

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
MAX = 4096


def delivery(
    task: str = "quota.cancel_change",
    queue: str = "quota.orders",
    body: Any = None,
    raw_body: bytes | None = None,
    headers: dict[str, Any] | None = None,
    content_type: Any = "application/json",
    content_encoding: Any = "utf-8",
    properties: dict[str, Any] | None = None,
) -> Delivery:
    """A Celery protocol 2 delivery as our transports hand it over, with one thing changed."""
    if body is None:
        body = [[], {"schema_version": 1, "order_id": "o-1", "reason": "left"}, {}]
    base = {"id": "6f1c4f0e-1", "task": task, "eta": None, "expires": None, "group": None}
    return Delivery(
        headers=base | (headers or {}),
        properties=properties or {},
        delivery_info={"routing_key": queue, deliveries.QUEUE_KEY: queue},
        body=raw_body if raw_body is not None else json.dumps(body).encode(),
        content_type=content_type,
        content_encoding=content_encoding,
    )


def refusal(d: Delivery) -> str | None:
    return check(d, max_bytes=MAX, now=NOW)


def test_a_well_formed_message_on_its_own_queue_passes() -> None:
    assert refusal(delivery()) is None


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("quota.payment_confirmed", "quota.orders"),
        ("quota.request_change", "quota.mail"),
        ("mail.service_provisioned", "quota.payments"),
    ],
)
def test_a_task_on_another_queue_than_its_own_is_refused(task: str, queue: str) -> None:
    assert "taken only from queue" in (refusal(delivery(task=task, queue=queue)) or "")


def test_any_contract_task_may_come_from_the_workers_own_retry_queue() -> None:
    assert refusal(delivery(task="quota.payment_confirmed", queue=deliveries.RETRY_QUEUE)) is None


def test_a_delivery_whose_queue_our_transport_did_not_tell_is_refused() -> None:
    d = delivery()
    unknown = Delivery(d.headers, d.properties, {"routing_key": "quota.orders"}, d.body,
                       d.content_type, d.content_encoding)  # fmt: skip
    assert "queue it came from is not known" in (refusal(unknown) or "")


@pytest.mark.parametrize("task", ["celery.accumulate", "celery.backend_cleanup", "quota.drop"])
def test_a_task_name_outside_the_contract_is_refused(task: str) -> None:
    assert "not a task of the contract" in (refusal(delivery(task=task)) or "")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"id": None}, "'id' header is missing"),
        ({"id": 42}, "'id' header is missing"),
        ({"id": ""}, "'id' header is missing"),
        ({"id": "x" * 256}, "'id' header is missing"),
        ({"id": "a\x1b]52;c;aGk=\x07"}, "control characters"),
        ({"task": None}, "'task' header is missing"),
        ({"task": "quota.cancel_change\x1b[2J"}, "control characters"),
        ({"argsrepr": "x" * 1_000_000}, "headers are"),
        ({"eta": "2036-12-01T10:00:00+00:00"}, "'eta' header is refused"),
        ({"countdown": 5}, "'countdown' header is refused"),
        ({"expires": "2020-01-01T00:00:00+00:00"}, "'expires' header is refused"),
        ({"group": "g-1"}, "'group' header is refused"),
    ],
)
def test_a_malformed_or_workflow_header_is_refused(headers: dict[str, Any], why: str) -> None:
    assert why in (refusal(delivery(headers=headers)) or "")


def test_a_missing_id_header_is_refused() -> None:
    d = delivery()
    headers = {k: v for k, v in d.headers.items() if k != "id"}
    no_id = Delivery(headers, {}, d.delivery_info, d.body, d.content_type, d.content_encoding)
    assert "'id' header is missing" in (refusal(no_id) or "")


def test_headers_that_are_not_a_mapping_are_refused() -> None:
    d = delivery()
    broken = Delivery(["id"], {}, d.delivery_info, d.body, d.content_type, d.content_encoding)
    assert "not a mapping" in (refusal(broken) or "")


def test_an_eta_of_the_workers_own_retry_passes_but_not_a_far_one() -> None:
    soon = (NOW + timedelta(seconds=20)).isoformat()
    far = (NOW + timedelta(days=3650)).isoformat()
    assert refusal(delivery(queue=deliveries.RETRY_QUEUE, headers={"eta": soon})) is None
    assert "'eta'" in (refusal(delivery(queue=deliveries.RETRY_QUEUE, headers={"eta": far})) or "")


@pytest.mark.parametrize("name", ["callbacks", "errbacks", "chain", "chord"])
def test_workflow_fields_in_the_body_are_refused(name: str) -> None:
    body = [[], {"schema_version": 1}, {name: [{"task": "quota.payment_confirmed"}]}]
    assert f"{name!r} in the body is refused" in (refusal(delivery(body=body)) or "")


def test_empty_workflow_fields_as_celery_writes_them_pass() -> None:
    body = [[], {"schema_version": 1}, {"callbacks": None, "errbacks": None, "chain": None,
                                        "chord": None}]  # fmt: skip
    assert refusal(delivery(body=body)) is None


@pytest.mark.parametrize(
    ("content_type", "content_encoding", "why"),
    [
        ("application/x-python-serialize", "binary", "content type"),
        ("application/x-yaml", "utf-8", "content type"),
        ("application/json; charset=utf-8", "utf-8", "content type"),
        ("APPLICATION/JSON", "utf-8", "content type"),
        (None, "utf-8", "content type"),
        ("application/json", "binary", "content encoding"),
        ("application/json", "latin-1", "content encoding"),
    ],
)
def test_only_json_in_utf8_is_accepted(content_type: Any, content_encoding: Any, why: str) -> None:
    d = delivery(content_type=content_type, content_encoding=content_encoding)
    assert why in (refusal(d) or "")


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b'{"args": [], "kwargs": {}}', "not a Celery protocol 2 body"),
        (b"[[], {}]", "not a Celery protocol 2 body"),
        (b"[[], [], {}]", "not a Celery protocol 2 body"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_a_body_that_is_not_a_protocol_2_json_body_is_refused(raw: bytes, why: str) -> None:
    assert why in (refusal(delivery(raw_body=raw[:MAX])) or "")


def test_a_body_over_the_limit_is_refused_before_it_is_parsed() -> None:
    assert "more than 4096 (QUOTA_MAX_MESSAGE_BYTES)" in (
        refusal(delivery(raw_body=b"[" * (MAX + 1))) or ""
    )


def test_more_keyword_arguments_than_any_message_has_are_refused() -> None:
    body = [[], {f"k{n}": 0 for n in range(envelope.MAX_FIELDS + 1)}, {}]
    assert "keyword arguments" in (refusal(delivery(body=body)) or "")


def test_a_refusal_set_by_the_transport_is_the_verdict() -> None:
    d = delivery(properties={deliveries.REFUSED_KEY: "body encoding 'none' is refused"})
    assert refusal(d) == "body encoding 'none' is refused"


def test_execution_hints_of_a_producer_are_dropped() -> None:
    headers: dict[str, Any] = {"timelimit": [0.0001, 0.0001], "retries": 7, "shadow": "x",
                               "ignore_result": False}  # fmt: skip
    properties: dict[str, Any] = {"reply_to": "quota.payments"}
    envelope.ignore_hints(headers, properties, "quota.orders")
    assert headers == {"timelimit": None, "retries": 0, "ignore_result": True}
    assert properties == {"reply_to": None}


def test_a_retry_of_the_workers_own_keeps_its_count() -> None:
    headers: dict[str, Any] = {"timelimit": [1, 2], "retries": 3}
    envelope.ignore_hints(headers, {}, deliveries.RETRY_QUEUE)
    assert headers == {"timelimit": None, "retries": 3, "ignore_result": True}


# -- stored bodies ------------------------------------------------------------------


def test_a_stored_body_keeps_64_kib_with_the_full_size_and_hash() -> None:
    raw = b'{"padding": "' + b"x" * 200_000 + b'"}'
    stored = StoredBody.of(raw)
    assert len(stored.text.encode()) == deliveries.STORED_BODY_BYTES
    assert stored.size == len(raw) and stored.truncated
    assert stored.sha256 == hashlib.sha256(raw).hexdigest()


def test_a_stored_body_cut_inside_a_character_drops_that_character() -> None:
    raw = b"a" * (deliveries.STORED_BODY_BYTES - 1) + "é".encode() * 10
    assert StoredBody.of(raw).text == "a" * (deliveries.STORED_BODY_BYTES - 1)


@pytest.mark.parametrize("raw", [b"\x80\x81 pickle", b"text with a \x00 nul"])
def test_a_body_that_is_not_text_is_stored_as_base64(raw: bytes) -> None:
    assert StoredBody.of(raw).text == "base64:" + base64.b64encode(raw).decode()


def test_a_small_body_is_stored_whole() -> None:
    stored = StoredBody.of('{"a": 1}')
    assert (stored.text, stored.size, stored.truncated) == ('{"a": 1}', 8, False)


# -- raw Redis items -------------------------------------------------------------------


def kombu_item(**change: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "body": base64.b64encode(b"[[], {}, {}]").decode(),
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {"id": "m-1", "task": "quota.cancel_change"},
        "properties": {
            "delivery_tag": "t-1",
            "body_encoding": "base64",
            "delivery_info": {"exchange": "quota.payments", "routing_key": "quota.payments"},
        },
    }
    for key, value in change.items():
        if key in ("body_encoding", "delivery_tag"):
            item["properties"][key] = value
        else:
            item[key] = value
    return item


def test_a_redis_item_gets_the_queue_it_was_taken_from_not_the_one_it_claims() -> None:
    payload = read_redis_item(json.dumps(kombu_item()).encode(), "quota.orders", MAX)
    assert payload["properties"]["delivery_info"] == {
        "exchange": "", "routing_key": "quota.orders", deliveries.QUEUE_KEY: "quota.orders",
    }  # fmt: skip
    assert deliveries.REFUSED_KEY not in payload["properties"]


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (b"hello", "not JSON"),
        (b"[1, 2]", "no properties"),
        (json.dumps(kombu_item(body_encoding="none")).encode(), "body encoding 'none'"),
        (json.dumps(kombu_item(body_encoding="rot13")).encode(), "body encoding 'rot13'"),
        (json.dumps(kombu_item(body="%%%not base64")).encode(), "not valid base64"),
        (json.dumps(kombu_item(headers=None)).encode(), "headers are not a mapping"),
        (json.dumps(kombu_item(headers={"id": "m", "compression": "application/x-bz2"})).encode(),
         "compressed"),
        (json.dumps(kombu_item(delivery_tag=7)).encode(), "no delivery tag"),
        (b" " * (deliveries.raw_limit(MAX) + 1), "more than QUOTA_MAX_MESSAGE_BYTES"),
    ],
)  # fmt: skip
def test_a_redis_item_kombu_cannot_decode_becomes_a_refused_stand_in(item: bytes, why: str) -> None:
    payload = read_redis_item(item, "quota.orders", MAX)
    properties = payload["properties"]
    assert why in properties[deliveries.REFUSED_KEY]
    assert properties[deliveries.SIZE_KEY] == len(item)
    assert properties[deliveries.SHA256_KEY] == hashlib.sha256(item).hexdigest()
    assert properties["delivery_tag"] and properties["body_encoding"] == "base64"
    assert base64.b64decode(payload["body"]) == item[: deliveries.STORED_BODY_BYTES]


def test_a_stand_in_keeps_the_claimed_id_and_task_for_the_dead_letter() -> None:
    item = json.dumps(kombu_item(body_encoding="none")).encode()
    assert read_redis_item(item, "quota.orders", MAX)["headers"] == {
        "id": "m-1", "task": "quota.cancel_change",
    }  # fmt: skip


def test_a_redis_item_with_a_list_for_headers_becomes_a_stand_in_without_them() -> None:
    payload = read_redis_item(json.dumps(kombu_item(headers=["m-1"])).encode(), "q", MAX)
    assert (
        payload["headers"] == {}
        and "headers are not a mapping" in payload["properties"][deliveries.REFUSED_KEY]
    )

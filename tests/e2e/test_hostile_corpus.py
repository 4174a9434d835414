"""Every message of the hostile corpus ends as a dead letter (and a rejection where ids can be
read); none crashes the worker or has a partial effect, and a good message works right after."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text

from tests.e2e.conftest import WorkerProcess
from tests.e2e.producer import QUEUES, Producer
from tests.helpers import EventReader, new_id, wait_until

pytestmark = pytest.mark.e2e

CORPUS = json.loads((Path(__file__).parents[1] / "data" / "hostile_messages.json").read_text())
IDENTIFIER = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _readable(value: object) -> bool:
    return isinstance(value, str) and IDENTIFIER.fullmatch(value) is not None


def _personalise(kwargs: dict[str, Any], n: int) -> dict[str, Any]:
    """Unique ids per case, so each outcome can be found; the bad values stay as they are."""
    marks = {"REQ": new_id(f"h{n}-req"), "ORD": new_id(f"h{n}-ord"), "PAY": new_id(f"h{n}-pay")}
    return {k: marks.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}


def _send(producer: Producer, case: dict[str, Any], n: int) -> tuple[str, dict[str, Any]]:
    kwargs = _personalise(case["kwargs"], n)
    if "oversize" in case:
        kwargs["padding"] = "x" * case["oversize"]
    task_id = new_id(f"hostile{n}")
    kind = case.get("content_type")
    if kind == "pickle":
        producer.send(case["task"], task_id=task_id, serializer="pickle", **kwargs)
    elif kind == "yaml":
        body = yaml.safe_dump([[], kwargs, {}]).encode()
        producer.send_raw(case["task"], body, "application/x-yaml", task_id)
    elif kind == "msgpack":
        producer.send_raw(
            case["task"], b"\x93\x90\x81\xa1a\x01\x80", "application/x-msgpack", task_id
        )
    elif "args" in case:
        producer.app.send_task(
            case["task"], args=case["args"], queue="quota.orders", task_id=task_id
        )
    elif case["task"] not in QUEUES:
        producer.app.send_task(case["task"], kwargs=kwargs, queue="quota.orders", task_id=task_id)
    else:
        producer.send(case["task"], task_id=task_id, **kwargs)
    return task_id, kwargs


def _lettered(db: Engine, ids: list[str]) -> set[str]:
    with db.connect() as conn:
        rows = conn.execute(text("SELECT message_id FROM dead_letters")).scalars().all()
    return set(rows) & set(ids)


def test_the_hostile_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 200


def test_every_hostile_message_is_dead_lettered_and_the_worker_goes_on(
    producer: Producer,
    db: Engine,
    events: EventReader,
    worker: WorkerProcess,
    customer_factory: Any,
) -> None:
    sent = [_send(producer, case, n) for n, case in enumerate(CORPUS)]
    ids = [task_id for task_id, _ in sent]
    assert wait_until(lambda: len(_lettered(db, ids)) == len(ids), 120), (
        f"not dead-lettered: {sorted(set(ids) - _lettered(db, ids))[:10]}\n{worker.tail()}"
    )
    # Where the ids of a change request can be read, the checkout hears why.
    for (_task_id, kwargs), case in zip(sent, CORPUS, strict=True):
        if (
            case["task"] == "quota.request_change"
            and "args" not in case
            and "content_type" not in case
        ) and all(_readable(kwargs.get(k)) for k in ("request_id", "order_id", "service_mail_id")):
            rejected = events.of_type("mail.quota.change.rejected", order_id=kwargs["order_id"])
            assert [e["data"]["reason"] for e in rejected] == ["invalid_message"], case["name"]
    # Nothing half-applied: no change, payment or address came from the corpus.
    with db.connect() as conn:
        touched = (
            conn.execute(
                text("SELECT count(*) FROM quota_changes WHERE service_mail_id = 'sm-1'")
            ).scalar_one()
            + conn.execute(
                text("SELECT count(*) FROM addresses WHERE service_mail_id = 'sm-1'")
            ).scalar_one()
        )
    assert touched == 0
    assert worker.process.poll() is None
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for("mail.quota.change.accepted", order_id=order["order_id"])

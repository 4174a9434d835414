"""Every envelope of the hostile corpus ends as its contract outcome on a real worker, on the
suite's broker (Redis or RabbitMQ), and none stalls, crashes or steers it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from sqlalchemy import Engine, text

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess
from tests.e2e.envelopes import Envelope, redis_client
from tests.e2e.producer import Producer
from tests.helpers import EventReader, new_id, wait_until

pytestmark = pytest.mark.e2e

CORPUS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "hostile_envelopes.json").read_text()
)
ROWS_OF_THE_ISSUE = 18


def _broker(services: Services) -> str:
    return "amqp" if services.broker_url.startswith(("amqp", "pyamqp")) else "redis"


class Sender:
    def __init__(self, services: Services) -> None:
        self.kind = _broker(services)
        self.url = services.broker_url

    def __enter__(self) -> Sender:
        if self.kind == "redis":
            self.client = redis_client(self.url)
        else:
            self.conn = Connection(self.url)
            self.conn.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kind == "redis":
            self.client.close()
        else:
            self.conn.release()

    def send(self, envelope: Envelope) -> None:
        if self.kind == "redis":
            envelope.send_redis(self.client)
        else:
            envelope.send_amqp(self.conn)


@pytest.fixture
def sender(services: Services) -> Iterator[Sender]:
    with Sender(services) as sender:
        yield sender


def _dead_letters(db: Engine, marks: list[str]) -> dict[str, dict[str, Any]]:
    """Dead letters found by mark: their message id, or the mark inside their stored body."""
    found: dict[str, dict[str, Any]] = {}
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT message_id, body, body_size, error FROM dead_letters")
        ).mappings()
        for row in rows:
            for mark in marks:
                if row["message_id"] == mark or (row["message_id"] is None and mark in row["body"]):
                    found[mark] = dict(row)
    return found


def _processed(db: Engine, marks: list[str]) -> dict[str, str]:
    with db.connect() as conn:
        rows = conn.execute(text("SELECT message_id, outcome FROM processed_messages")).all()
    return {m: o for m, o in rows if m in marks}


def test_the_corpus_holds_every_row_of_the_issue_and_their_neighbours() -> None:
    assert len(CORPUS) >= 2 * ROWS_OF_THE_ISSUE
    assert len({case["name"] for case in CORPUS}) == len(CORPUS)


def test_every_hostile_envelope_ends_as_its_contract_outcome_and_the_worker_goes_on(
    services: Services,
    sender: Sender,
    db: Engine,
    events: EventReader,
    worker: WorkerProcess,
    customer_factory: Any,
) -> None:
    cases = [c for c in CORPUS if sender.kind in c["brokers"]]
    sent = []
    for n, case in enumerate(cases):
        envelope = Envelope(case, new_id(f"env{n}"))
        sender.send(envelope)
        sent.append((case, envelope.mark))
    marks = [mark for _, mark in sent]
    refused = [mark for case, mark in sent if "dead_letter" in case["expect"]]
    runs = [mark for case, mark in sent if "runs" in case["expect"]]

    def settled() -> bool:
        return len(_dead_letters(db, marks)) >= len(refused) and set(runs) <= set(
            _processed(db, runs)
        )

    settled_in_time = wait_until(settled, 180, step=0.5)
    letters, processed = _dead_letters(db, marks), _processed(db, runs)
    outcomes = {}
    for case, mark in sent:
        if "dead_letter" in case["expect"]:
            error = letters.get(mark, {}).get("error")
            ok = (
                error is not None
                and error.startswith("invalid_message: ")
                and (case["expect"]["dead_letter"] in error)
            )
            outcomes[case["name"]] = ok or f"dead letter error {error!r}"
        else:
            ok = mark in processed and mark not in letters and processed[mark] != "dead_letter"
            outcomes[case["name"]] = ok or f"processed {processed.get(mark)!r}, {letters.get(mark)}"
    wrong = {name: why for name, why in outcomes.items() if why is not True}
    assert settled_in_time and not wrong, f"{wrong}\n{worker.tail()}"
    # Stored as the contract says: at most 64 KiB of the body, with its full size.
    for mark in refused:
        assert len(letters[mark]["body"].encode()) <= 64 * 1024 * 4 // 3 + 8
    big = [letters[m] for c, m in sent if c.get("pad_bytes", 0) >= 5 * 1024 * 1024]
    assert big and all(letter["body_size"] >= 5 * 1024 * 1024 for letter in big)
    # Serving: the worker is the same process, and a good message right after works.
    assert worker.process.poll() is None
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for("mail.quota.change.accepted", order_id=order["order_id"])


def _state(db: Engine, order_id: str) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                text("SELECT state FROM quota_changes WHERE order_id = :o"), {"o": order_id}
            ).scalar_one()
        )


@pytest.mark.parametrize(
    "how",
    ["payment on the orders queue", "callbacks in the body"],
)
def test_a_publisher_on_one_queue_cannot_confirm_a_payment(
    how: str,
    sender: Sender,
    db: Engine,
    events: EventReader,
    customer_factory: Any,
    producer: Producer,
) -> None:
    """The two ways the issue found to pay an order from another queue: both refused, the
    change still awaits payment, and the real payment service's message still applies it."""
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for("mail.quota.change.accepted", order_id=order["order_id"])
    payment = {
        "schema_version": 1, "payment_id": new_id("pay"), "order_id": order["order_id"],
        "amount": 1500, "currency": "CHF", "paid_at": "2026-11-24T10:02:00Z",
    }  # fmt: skip
    mark = new_id("steer")
    if how == "payment on the orders queue":
        case = {"task": "quota.payment_confirmed", "queue": "quota.orders"}
        envelope = Envelope(case, mark)
        envelope.body = json.dumps([[], payment, {}]).encode()
    else:
        link = {"task": "quota.payment_confirmed", "args": [], "kwargs": payment,
                "options": {"queue": "quota.payments"}, "subtask_type": None}  # fmt: skip
        envelope = Envelope({"task": "mail.service_provisioned", "embed": {"callbacks": [link]}},
                            mark)  # fmt: skip
    sender.send(envelope)
    assert wait_until(lambda: _dead_letters(db, [mark]), 30)
    assert _state(db, order["order_id"]) == "awaiting_payment"
    producer.pay(payment_id=new_id("pay"), order_id=order["order_id"])
    events.wait_for("mail.quota.changed", order_id=order["order_id"])

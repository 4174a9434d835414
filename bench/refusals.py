"""The refusal flood: N messages the envelope refuses, then one good one behind them.

A publisher on `quota.orders` sends payment confirmations there (refused: the task
is taken only from `quota.payments`). They are preloaded while the workers do not
consume, then consumption starts: the figure is the time until the good request's
event is on the stream, and the refusals per second that implies, beside the rate
at which the same run's worker processed valid messages.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from sqlalchemy import create_engine, text

from bench.workload import NOW, mail_id


def refusal_flood(bench: Any, names: list[str], count: int, mail: int) -> dict[str, Any]:
    """`mail` is the number of a seeded Service Mail of tag "flood" (limit 10)."""
    target = bench.target
    bench.set_consuming(names, on=False)
    with bench.app.producer_or_acquire() as producer:
        for n in range(count):
            bench.app.send_task(
                "quota.payment_confirmed", queue="quota.orders", producer=producer,
                kwargs={"schema_version": 1, "payment_id": f"pay-flood-{n}",
                        "order_id": f"ord-flood-{n}", "amount": 500, "currency": "CHF",
                        "paid_at": NOW},
            )  # fmt: skip
        good = "ord-flood-good"
        bench.app.send_task(
            "quota.request_change", queue="quota.orders", producer=producer,
            kwargs={"schema_version": 1, "request_id": "req-flood-good", "order_id": good,
                    "account_id": f"acc-flood-{mail}", "service_mail_id": mail_id("flood", mail),
                    "expected_address_limit": 10, "new_address_limit": 9, "amount_due": 0,
                    "currency": "CHF", "requested_at": NOW},
        )  # fmt: skip
    client = redis.Redis.from_url(target.redis_url)
    last_id = client.xinfo_stream(target.stream)["last-generated-id"]
    start = time.monotonic()
    bench.set_consuming(names, on=True)
    seconds = None
    while seconds is None and time.monotonic() - start < 600:
        reply: Any = client.xread({target.stream: last_id}, count=1000, block=200)
        for _key, entries in reply or []:
            for entry_id, fields in entries:
                last_id = entry_id
                if json.loads(fields[b"event"])["data"].get("order_id") == good:
                    seconds = time.monotonic() - start
    engine = create_engine(target.database_url)
    with engine.connect() as conn:
        lettered = conn.execute(
            text("SELECT count(*) FROM dead_letters WHERE task = 'quota.payment_confirmed' "
                 "AND error LIKE 'invalid_message: %taken only from queue%'")
        ).scalar_one()  # fmt: skip
    engine.dispose()
    return {
        "refused": count,
        "dead_lettered": int(lettered),
        "seconds_to_good_event": None if seconds is None else round(seconds, 2),
        "refused_per_second": None if not seconds else round(count / seconds, 1),
    }

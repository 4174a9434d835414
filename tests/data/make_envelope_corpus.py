"""Writes tests/data/hostile_envelopes.json: the corpus of bad Celery envelopes.

Each case starts from a well-formed protocol 2 message of `task` (its payload from
tests/payloads.py) and changes one thing: a header, a property, the body's third
element, the content type or encoding, the Redis body encoding, the body itself, or
the whole raw item. `expect` is the contract's outcome: a dead letter whose error
holds the text given, or `runs` (the hint is ignored and the message runs as usual).
`brokers` lists where the shape can be sent (a raw Redis item or a kombu
`body_encoding` exists on Redis only). Run it again after changing it
(`.venv/bin/python -m tests.data.make_envelope_corpus`); the corpus is data, kept in
the repository, so a failing case can be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BOTH = ["redis", "amqp"]
REDIS = ["redis"]
OSC52 = "\x1b]52;c;aGk=\x07"
CLEAR = "\x1b[2J\x1bc"
FAR = "2036-12-01T10:00:00+00:00"
PAST = "2020-01-01T00:00:00+00:00"
LINKED_PAYMENT = {"task": "quota.payment_confirmed", "args": [], "kwargs": {},
                  "options": {"queue": "quota.payments"}, "subtask_type": None}  # fmt: skip


def case(name: str, expect: str | None, brokers: list[str] = BOTH, **change: Any) -> dict[str, Any]:
    """`expect` None: the message runs; else the text its dead letter's error holds."""
    return {
        "name": name,
        "task": change.pop("task", "quota.cancel_change"),
        **change,
        "brokers": brokers,
        "expect": {"runs": True} if expect is None else {"dead_letter": expect},
    }


CORPUS = [
    # The table of issue 13, row by row.
    case("no id header", "'id' header is missing", headers={"id": "$delete"}),
    case("body_encoding none", "body encoding 'none'", REDIS, body_encoding="none"),
    case("body_encoding unknown codec", "body encoding 'rot13'", REDIS, body_encoding="rot13"),
    case("payment on the orders queue", "taken only from queue quota.payments",
         task="quota.payment_confirmed", queue="quota.orders"),
    case("callbacks in the body", "'callbacks' in the body is refused",
         task="mail.service_provisioned", embed={"callbacks": [LINKED_PAYMENT]}),
    case("chain in the body", "'chain' in the body is refused",
         embed={"chain": [{"task": "quota.payment_confirmed", "kwargs": {}}]}),
    case("celery.accumulate", "not a task of the contract", task="celery.accumulate",
         queue="quota.orders"),
    case("celery.backend_cleanup", "not a task of the contract", task="celery.backend_cleanup",
         queue="quota.orders"),
    case("expires in the past", "'expires' header is refused", headers={"expires": PAST}),
    case("eta ten years ahead", "'eta' header is refused", headers={"eta": FAR}),
    case("timelimit from the producer", None, headers={"timelimit": [0.0001, 0.0001]}),
    case("compression bz2", "compressed bodies are refused", compression="application/x-bz2"),
    case("50 MB body", "more than", REDIS, pad_bytes=50 * 1024 * 1024),
    case("5 MB body", "more than", pad_bytes=5 * 1024 * 1024),
    case("1,000,000 keys", "more than", many_keys=1_000_000),
    case("OSC 52 in the task name", "control characters", headers={"task": "x" + OSC52}),
    case("OSC 52 in the id", "control characters", headers={"id": "m" + OSC52}),
    case("clear screen in the id", "control characters", headers={"id": "m" + CLEAR}),
    # Their neighbours.
    case("no task header", "'task' header is missing", headers={"task": "$delete"}),
    case("id is a number", "'id' header is missing", headers={"id": 42}),
    case("id is a list", "'id' header is missing", headers={"id": ["m"]}),
    case("id of 300 characters", "'id' header is missing", headers={"id": "m" * 300}),
    case("task is a number", "'task' header is missing", headers={"task": 7}),
    # AMQP carries headers in one frame (128 KiB): RabbitMQ closes a channel sending more.
    case("argsrepr of 1 MB", "headers are", REDIS, headers={"argsrepr": "x" * 1_000_000}),
    case("argsrepr of 100 KB", "headers are", headers={"argsrepr": "x" * 100_000}),
    case("countdown header", "'countdown' header is refused", headers={"countdown": 30}),
    case("eta a second ahead", "'eta' header is refused", headers={"eta": "$soon"}),
    case("group header", "'group' header is refused", headers={"group": "g-1"}),
    case("group_index header", "'group_index' header is refused", headers={"group_index": 0}),
    case("chord in the body", "'chord' in the body is refused",
         embed={"chord": {"task": "quota.payment_confirmed"}}),
    case("errbacks in the body", "'errbacks' in the body is refused",
         embed={"errbacks": [{"task": "quota.payment_confirmed"}]}),
    case("reply_to another queue", None, properties={"reply_to": "quota.payments"}),
    case("retries from the producer", None, headers={"retries": 99}),
    case("shadow name", None, headers={"shadow": "quota.payment_confirmed"}),
    case("content type with charset", "content type",
         content_type="application/json; charset=utf-8"),
    case("content type upper case", "content type", content_type="APPLICATION/JSON"),
    case("content type text/plain", "content type", content_type="text/plain"),
    case("content type msgpack", "content type", content_type="application/x-msgpack"),
    case("content type pickle", "content type", content_type="application/x-python-serialize"),
    case("content encoding binary", "content encoding", content_encoding="binary"),
    case("content encoding latin-1", "content encoding", content_encoding="latin-1"),
    case("body not JSON", "not JSON", body="{not json"),
    case("body not UTF-8", "not UTF-8", body_hex="ff fe 5b 5d"),
    case("protocol 1 body", "'id' header is missing", headers={"id": "$delete", "task": "$delete"},
         body='{"task": "quota.cancel_change", "id": "MARK", "args": [], "kwargs": {}}'),
    case("body of two elements", "not a Celery protocol 2 body", body='[[], {"m": "MARK"}]'),
    case("kwargs not a mapping", "not a Celery protocol 2 body", body='[[], ["MARK"], {}]'),
    case("deeply nested body", "not JSON", body="[" * 200_000),
    case("40 keyword arguments", "keyword arguments", many_keys=40),
    case("body base64 broken", "not valid base64", REDIS, body_b64="%%%MARK"),
    case("raw item not JSON", "not JSON", REDIS, raw="MARK hello"),
    case("raw item a JSON list", "no properties", REDIS, raw='["MARK"]'),
    case("raw item without delivery tag", "no delivery tag", REDIS, properties={"delivery_tag": 5}),
    case("headers not a mapping", "headers are not a mapping", REDIS, headers_raw=["MARK"]),
    case("claimed routing key of another queue", "taken only from queue quota.payments", REDIS,
         task="quota.payment_confirmed", queue="quota.orders",
         properties={"delivery_info": {"exchange": "", "routing_key": "quota.payments"}}),
    case("claimed quota_queue of another queue", "taken only from queue quota.payments", REDIS,
         task="quota.payment_confirmed", queue="quota.orders",
         properties={"delivery_info": {"exchange": "", "routing_key": "quota.payments",
                                       "quota_queue": "quota.payments"}}),
    case("refusal marker forged as accepted", None, REDIS, properties={"quota_refused": None}),
]  # fmt: skip


def main() -> None:
    path = Path(__file__).with_name("hostile_envelopes.json")
    path.write_text(json.dumps(CORPUS, indent=1, ensure_ascii=True) + "\n")
    print(f"{len(CORPUS)} cases -> {path}")


if __name__ == "__main__":
    main()

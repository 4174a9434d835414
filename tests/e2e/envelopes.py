"""Raw Celery envelopes, built and sent as a hostile producer would: no Celery involved.

On Redis an envelope is a JSON item LPUSHed onto the queue's list (kombu's format,
any field forgeable); on RabbitMQ it is published through the default exchange with
the properties and headers given.
"""

from __future__ import annotations

import base64
import bz2
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from kombu import Connection

from tests.e2e.producer import QUEUES
from tests.payloads import VALID


def _payload(task: str, mark: str) -> dict[str, Any]:
    base = VALID.get(task, {"schema_version": 1})
    return {k: mark if k in ("order_id", "request_id", "payment_id") else v
            for k, v in base.items()}  # fmt: skip


def _merge(target: dict[str, Any], change: dict[str, Any], mark: str) -> None:
    for key, value in change.items():
        if value == "$delete":
            target.pop(key, None)
        elif value == "$soon":
            target[key] = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        else:
            target[key] = value


class Envelope:
    """One case of tests/data/hostile_envelopes.json, made concrete with a unique mark."""

    def __init__(self, case: dict[str, Any], mark: str) -> None:
        self.case, self.mark = case, mark
        task = case["task"]
        self.queue = case.get("queue") or QUEUES.get(task, "quota.orders")
        kwargs = _payload(task, mark)
        for n in range(case.get("many_keys", 0)):
            kwargs[f"k{n}"] = 0
        if "pad_bytes" in case:
            kwargs["padding"] = "x" * case["pad_bytes"]
        embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
        embed.update(case.get("embed", {}))
        if "body" in case:
            self.body = case["body"].replace("MARK", mark).encode()
        elif "body_hex" in case:
            self.body = bytes.fromhex(case["body_hex"])
        else:
            self.body = json.dumps([[], kwargs, embed]).encode()
        self.headers: Any = {
            "lang": "py", "task": task, "id": mark, "shadow": None, "eta": None,
            "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": mark, "parent_id": None,
            "argsrepr": "()", "kwargsrepr": "{...}", "origin": "hostile@test",
            "ignore_result": False,
        }  # fmt: skip
        _merge(self.headers, case.get("headers", {}), mark)
        if "compression" in case:
            self.headers["compression"] = case["compression"]
            self.body = bz2.compress(self.body)
        if "headers_raw" in case:
            self.headers = [h.replace("MARK", mark) for h in case["headers_raw"]]
        self.content_type = case.get("content_type", "application/json")
        self.content_encoding = case.get("content_encoding", "utf-8")

    def redis_item(self) -> bytes:
        if "raw" in self.case:
            return str(self.case["raw"]).replace("MARK", self.mark).encode()
        properties: dict[str, Any] = {
            "correlation_id": self.mark, "reply_to": str(uuid.uuid4()), "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": self.queue}, "priority": 0,
            "body_encoding": self.case.get("body_encoding", "base64"),
            "delivery_tag": str(uuid.uuid4()),
        }  # fmt: skip
        _merge(properties, self.case.get("properties", {}), self.mark)
        if properties["body_encoding"] == "base64":
            body = base64.b64encode(self.body).decode()
        else:
            body = self.body.decode("latin-1")
        body = self.case.get("body_b64", body).replace("MARK", self.mark)
        # Headers first: a stored first 64 KiB of an item too large to read holds the mark.
        item = {
            "headers": self.headers, "content-type": self.content_type,
            "content-encoding": self.content_encoding, "properties": properties, "body": body,
        }  # fmt: skip
        return json.dumps(item).encode()

    def send_redis(self, client: redis.Redis) -> None:
        client.lpush(self.queue, self.redis_item())

    def send_amqp(self, conn: Connection) -> None:
        properties = dict(self.case.get("properties", {}))
        conn.default_channel.basic_publish(
            conn.default_channel.prepare_message(
                self.body,
                content_type=self.content_type,
                content_encoding=self.content_encoding,
                headers=self.headers,
                properties={"delivery_mode": 2, "correlation_id": self.mark, **properties},
            ),
            exchange="",
            routing_key=self.queue,
        )


def redis_client(broker_url: str) -> redis.Redis:
    """A plain client of the broker's Redis (kombu's `redis+socket://` is redis-py's `unix://`)."""
    if broker_url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=broker_url.removeprefix("redis+socket://"))
    return redis.Redis.from_url(broker_url)

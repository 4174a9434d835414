"""What our transports hand the consumer, and how a dead letter keeps a body.

The keys our transports set on every delivery (the queue it was really taken
from; for a Redis item kombu could not read, the refusal and the item's size
and hash), the reader of raw Redis items (`read_redis_item`, used by
`worker/adapters/transport.py` before kombu sees an item), the queues the
worker consumes, and `StoredBody`: at most a body's first 64 KiB, with its
full size and SHA-256. The rules that decide on a delivery are
`worker/entrypoints/envelope.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from events.inbound import QUEUES

# The worker's own retries wait on this queue; only the worker may publish to it.
RETRY_QUEUE = "quota.retry"
# What the worker consumes: the contract's queues and its own retry queue.
CONSUMED_QUEUES = (*QUEUES, RETRY_QUEUE)
# Set by our transports on every delivery: the queue the message came from.
QUEUE_KEY = "quota_queue"
# Set by our Redis transport on a delivery it could not read as a kombu message.
REFUSED_KEY = "quota_refused"
SIZE_KEY = "quota_size"
SHA256_KEY = "quota_sha256"

STORED_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class StoredBody:
    """A body as a dead letter keeps it: its first 64 KiB, its full size and SHA-256."""

    text: str
    size: int
    sha256: str

    @property
    def truncated(self) -> bool:
        return self.size > STORED_BODY_BYTES

    @classmethod
    def of(cls, raw: bytes | str) -> StoredBody:
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
        head = data[:STORED_BODY_BYTES]
        return cls(
            show(head, cut=len(data) > len(head)), len(data), hashlib.sha256(data).hexdigest()
        )


def show(head: bytes, cut: bool = False) -> str:
    """Bytes as text: UTF-8 where they are, else base64 (`base64:...`); NUL, which a
    PostgreSQL text cannot hold, counts as not text. With `cut`, the bytes end where
    a longer body was cut, so a character split there is dropped."""
    if b"\x00" not in head:
        for end in range(len(head), len(head) - (4 if cut else 1), -1):
            try:
                return head[:end].decode("utf-8")
            except UnicodeDecodeError:
                continue
    return "base64:" + base64.b64encode(head).decode("ascii")


def stored_body(properties: Mapping[str, Any], body: bytes) -> StoredBody:
    """How a dead letter keeps a delivered body: our Redis stand-in carries the first
    64 KiB of the item it replaced, with that item's size and hash; any other body is
    stored as it came."""
    if isinstance(properties.get(SIZE_KEY), int):
        return StoredBody(show(body, cut=True), properties[SIZE_KEY], str(properties[SHA256_KEY]))
    return StoredBody.of(body)


def raw_limit(max_bytes: int) -> int:
    """The largest raw Redis item read: a base64 body of max_bytes and 64 KiB of envelope."""
    return max_bytes * 4 // 3 + 4 + 64 * 1024


def read_redis_item(item: bytes, queue: str, max_bytes: int) -> dict[str, Any]:
    """A raw item of a Redis queue as the kombu payload to deliver: never raises.

    A readable kombu message comes back with its claimed delivery info replaced by the
    queue it was taken from. Anything kombu could not decode (not JSON, an unknown
    `body_encoding`, bad base64, a compressed body, no headers) comes back as a
    small, well-formed stand-in carrying the refusal, the item's first 64 KiB, size
    and SHA-256, so the consumer dead-letters it like any other refused message.
    """
    try:
        return _read_redis_item(item, queue, max_bytes)
    except Exception as exc:  # never the transport's exception: a dead letter instead
        return _stand_in(item, queue, None, f"not a kombu message ({type(exc).__name__})")


def _read_redis_item(item: bytes, queue: str, max_bytes: int) -> dict[str, Any]:
    payload: Any = None
    refusal = None
    if len(item) > raw_limit(max_bytes):
        refusal = f"the message is {len(item)} bytes, more than QUOTA_MAX_MESSAGE_BYTES allows"
    else:
        try:
            payload = json.loads(item)
        except (ValueError, RecursionError):
            refusal = "not a kombu message: not JSON"
        else:
            refusal = _kombu_shape(payload)
    if refusal is not None:
        return _stand_in(item, queue, payload, refusal)
    properties = payload["properties"]
    for key in (REFUSED_KEY, SIZE_KEY, SHA256_KEY):
        properties.pop(key, None)
    properties["delivery_info"] = {"exchange": "", "routing_key": queue, QUEUE_KEY: queue}
    return payload  # type: ignore[no-any-return]


def _kombu_shape(payload: Any) -> str | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
        return "not a kombu message: no properties"
    properties = payload["properties"]
    if not isinstance(properties.get("delivery_tag"), str):
        return "not a kombu message: no delivery tag"
    if not isinstance(payload.get("headers"), dict):
        return "its headers are not a mapping (not a Celery protocol 2 message)"
    if payload["headers"].get("compression") is not None:
        return f"compressed bodies are refused ({payload['headers']['compression']!r})"
    body, encoding = payload.get("body"), properties.get("body_encoding")
    if not isinstance(body, str):
        return "its body is not a string"
    if encoding == "base64":
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "its body is not valid base64"
    elif encoding is not None:
        return f"body encoding {encoding!r} is refused: base64 or none"
    return None


def _stand_in(item: bytes, queue: str, payload: Any, refusal: str) -> dict[str, Any]:
    stored = StoredBody.of(item)
    headers = payload.get("headers") if isinstance(payload, dict) else None
    # Keep the claimed id and task (checked and escaped where they are shown).
    claimed = headers if isinstance(headers, dict) else {}
    kept = {k: v for k, v in claimed.items() if k in ("id", "task") and isinstance(v, str)}
    properties = payload.get("properties") if isinstance(payload, dict) else None
    tag = properties.get("delivery_tag") if isinstance(properties, dict) else None
    return {
        "body": base64.b64encode(item[:STORED_BODY_BYTES]).decode("ascii"),
        "content-type": "application/octet-stream",
        "content-encoding": "binary",
        "headers": kept,
        "properties": {
            "delivery_tag": tag if isinstance(tag, str) and tag else uuid.uuid4().hex,
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": queue, QUEUE_KEY: queue},
            REFUSED_KEY: refusal,
            SIZE_KEY: stored.size,
            SHA256_KEY: stored.sha256,
        },
    }

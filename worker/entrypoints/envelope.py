"""The Celery envelope is input too: the checks every delivered message passes first.

Pure functions of what a transport delivered (headers, properties, delivery
info, body), so each rule is a unit test. `worker/entrypoints/consumer.py` calls `check`
before Celery builds a request, on both brokers; `worker/adapters/transport.py` and
`worker/adapters/transport_amqp.py` make the fields it reads trustworthy: the queue a
message was really taken from (never the one its envelope claims), and a
body that kombu has not decoded, decompressed or choked on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from events.inbound import INBOUND, QUEUES

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
MAX_HEADERS_BYTES = 16 * 1024
MAX_ID_LENGTH = 255
# More keyword arguments than any message of the contract has, with room for a new field.
MAX_FIELDS = 32
# A retry of the worker's own waits at most 20 s
# (worker.entrypoints.app.MAX_RETRY_COUNTDOWN, +20 %).
MAX_RETRY_ETA = timedelta(seconds=60)
CONTENT_TYPE = "application/json"
CONTENT_ENCODINGS = frozenset({"utf-8", "utf8"})
# Celery's workflow fields: in the body's third element, and `group` in the headers.
WORKFLOW_EMBED = ("callbacks", "errbacks", "chain", "chord")
SCHEDULING_HEADERS = ("eta", "countdown", "expires")
WORKFLOW_HEADERS = ("group", "group_index")


@dataclass(frozen=True)
class Delivery:
    """What a transport delivered, as kombu's `Message` holds it."""

    headers: Any
    properties: Mapping[str, Any]
    delivery_info: Mapping[str, Any]
    body: bytes
    content_type: Any
    content_encoding: Any


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


def check(delivery: Delivery, *, max_bytes: int, now: datetime) -> str | None:
    """Why the message is refused, or None: it may go on to its task."""
    properties = delivery.properties
    if isinstance(properties.get(REFUSED_KEY), str):
        return str(properties[REFUSED_KEY])
    queue = delivery.delivery_info.get(QUEUE_KEY)
    if not isinstance(queue, str):
        return "the queue it came from is not known (a transport quota-worker does not support)"
    headers = delivery.headers
    if not isinstance(headers, Mapping):
        return "its headers are not a mapping (not a Celery protocol 2 message)"
    return (
        _headers(headers, queue, now)
        or _content(delivery, max_bytes)
        or _body(delivery.body, queue == RETRY_QUEUE)
    )


def _headers(headers: Mapping[str, Any], queue: str, now: datetime) -> str | None:
    for name in ("id", "task"):
        value = headers.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
            return f"the {name!r} header is missing or not a string of 1-{MAX_ID_LENGTH} characters"
        if not value.isprintable():
            return f"the {name!r} header holds control characters"
    try:
        size = len(json.dumps(headers, default=repr))
    except (TypeError, ValueError, RecursionError):
        return "its headers cannot be read as JSON"
    if size > MAX_HEADERS_BYTES:
        return f"its headers are {size} bytes, more than {MAX_HEADERS_BYTES}"
    task = headers["task"]
    if task not in INBOUND:
        return f"unknown task {task!r}: not a task of the contract"
    home = INBOUND[task][0]
    if queue not in (home, RETRY_QUEUE):
        return f"{task} is taken only from queue {home}, not from {queue}"
    for name in WORKFLOW_HEADERS:
        if headers.get(name) is not None:
            return f"the {name!r} header is refused: Celery workflows mean nothing here"
    for name in SCHEDULING_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if name == "eta" and queue == RETRY_QUEUE and _soon(value, now):
            continue
        return f"the {name!r} header is refused: a message here runs when it arrives"
    return None


def _soon(value: object, now: datetime) -> bool:
    """An eta of the worker's own retries: a time at most a minute ahead."""
    if not isinstance(value, str):
        return False
    try:
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when - now <= MAX_RETRY_ETA
    except (ValueError, OverflowError):
        return False


def _content(delivery: Delivery, max_bytes: int) -> str | None:
    if not isinstance(delivery.content_type, str) or delivery.content_type != CONTENT_TYPE:
        return f"content type {delivery.content_type!r} is refused: send {CONTENT_TYPE}"
    encoding = delivery.content_encoding
    if not isinstance(encoding, str) or encoding.lower() not in CONTENT_ENCODINGS:
        return f"content encoding {encoding!r} is refused: send utf-8"
    if len(delivery.body) > max_bytes:
        size = len(delivery.body)
        return f"its body is {size} bytes, more than {max_bytes} (QUOTA_MAX_MESSAGE_BYTES)"
    return None


def _body(body: bytes, own_retry: bool) -> str | None:
    try:
        decoded = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return "its body is not UTF-8"
    except (ValueError, RecursionError):
        return "its body is not JSON"
    if (
        not isinstance(decoded, list)
        or len(decoded) != 3
        or not isinstance(decoded[0], list)
        or not isinstance(decoded[1], dict)
        or not isinstance(decoded[2], dict)
    ):
        return "its body is not a Celery protocol 2 body: [args, kwargs, embed]"
    _args, kwargs, embed = decoded
    if len(kwargs) > MAX_FIELDS:
        return f"{len(kwargs)} keyword arguments: more than any message of the contract has"
    for name in WORKFLOW_EMBED:
        if embed.get(name):
            return (
                f"{name!r} in the body is refused: the worker never publishes on a message's behalf"
            )
    return None


def ignore_hints(headers: MutableMapping[str, Any], properties: MutableMapping[str, Any]) -> None:
    """Drop the execution hints a producer may set: the worker's own settings apply.

    A retry of the worker's own (on RETRY_QUEUE) keeps its count; any other starts at 0.
    """
    headers["timelimit"] = None
    headers["ignore_result"] = True
    for name in ("shadow", "stamped_headers", "stamps", "replaced_task_nesting"):
        headers.pop(name, None)
    properties["reply_to"] = None


def ignore_producer_retries(headers: MutableMapping[str, Any]) -> None:
    headers["retries"] = 0


# -- the Redis transport's raw items ---------------------------------------------


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

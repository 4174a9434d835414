"""The Celery envelope is input too: the checks every delivered message passes first.

Pure functions of what a transport delivered (headers, properties, delivery
info, body), so each rule is a unit test. `worker/entrypoints/consumer.py` calls `check`
before Celery builds a request, on both brokers; `worker/adapters/transport.py` and
`worker/adapters/transport_amqp.py` make the fields it reads trustworthy: the queue a
message was really taken from (never the one its envelope claims), and a
body that kombu has not decoded, decompressed or choked on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from events.inbound import INBOUND
from worker.adapters.deliveries import QUEUE_KEY, REFUSED_KEY, RETRY_QUEUE

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
    return _headers(headers, queue, now) or _content(delivery, max_bytes) or _body(delivery.body)


def well_formed(value: object) -> TypeGuard[str]:
    """An `id` or `task` header as the contract means it: a printable string of 1-255
    characters (also what may be stored as a dead letter's key)."""
    return isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH and value.isprintable()


def _headers(headers: Mapping[str, Any], queue: str, now: datetime) -> str | None:
    for name in ("id", "task"):
        value = headers.get(name)
        if well_formed(value):
            continue
        if isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH:
            return f"the {name!r} header holds control characters"
        return f"the {name!r} header is missing or not a string of 1-{MAX_ID_LENGTH} characters"
    try:
        size = len(json.dumps(headers, default=repr))
    except (TypeError, ValueError, RecursionError):
        return "its headers cannot be read as JSON"
    if size > MAX_HEADERS_BYTES:
        return f"its headers are {size} bytes, more than {MAX_HEADERS_BYTES}"
    task = headers["task"]
    if task not in INBOUND:
        return f"unknown task {task!r}: not a task of the contract"
    home = INBOUND[task].queue
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
    if delivery.content_type != CONTENT_TYPE:
        return f"content type {delivery.content_type!r} is refused: send {CONTENT_TYPE}"
    encoding = delivery.content_encoding
    if not isinstance(encoding, str) or encoding.lower() not in CONTENT_ENCODINGS:
        return f"content encoding {encoding!r} is refused: send utf-8"
    size = len(delivery.body)
    if size > max_bytes:
        return f"its body is {size} bytes, more than {max_bytes} (QUOTA_MAX_MESSAGE_BYTES)"
    return None


def _body(body: bytes) -> str | None:
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


def ignore_hints(
    headers: MutableMapping[str, Any], properties: MutableMapping[str, Any], queue: str
) -> None:
    """Drop the execution hints a producer may set: the worker's own settings apply.

    A retry of the worker's own (taken from RETRY_QUEUE) keeps its count; any other
    message starts at 0.
    """
    headers["timelimit"] = None
    headers["ignore_result"] = True
    for name in ("shadow", "stamped_headers", "stamps", "replaced_task_nesting"):
        headers.pop(name, None)
    properties["reply_to"] = None
    if queue != RETRY_QUEUE:
        headers["retries"] = 0

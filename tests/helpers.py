"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import itertools
import json
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

RUN = uuid.uuid4().hex[:8]
_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    """An identifier no other test, nor another run, uses."""
    return f"{prefix}-{RUN}-{next(_counter)}"


def short_tmp(prefix: str) -> Path:
    # Unix socket paths are limited to 107 bytes: keep these near the root.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; returns its last value (falsy on time-out)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


class EventReader:
    """Reads the quota event stream the way a downstream consumer would: plain Redis."""

    def __init__(self, redis_url: str, stream: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.stream = stream
        self.last_id = "0-0"
        self.events: list[dict[str, Any]] = []
        self.entries: list[tuple[str, dict[str, str]]] = []

    def poll(self) -> list[dict[str, Any]]:
        rows = self.client.xread({self.stream: self.last_id}, count=10_000) or []
        for _key, entries in rows:
            for entry_id, fields in entries:
                self.last_id = entry_id.decode()
                decoded = {k.decode(): v.decode() for k, v in fields.items()}
                self.entries.append((self.last_id, decoded))
                self.events.append(json.loads(decoded["event"]))
        return self.events

    def matching(self, **data: Any) -> list[dict[str, Any]]:
        self.poll()
        return [e for e in self.events if all(e["data"].get(k) == v for k, v in data.items())]

    def of_type(self, event_type: str, **data: Any) -> list[dict[str, Any]]:
        return [e for e in self.matching(**data) if e["type"] == event_type]

    def wait_for(self, event_type: str, timeout: float = 30.0, **data: Any) -> dict[str, Any]:
        found = wait_until(lambda: self.of_type(event_type, **data), timeout)
        if not found:
            seen = [(e["type"], e["data"]) for e in self.matching(**data)]
            raise AssertionError(f"no {event_type} with {data} within {timeout}s; saw {seen}")
        return found[0]  # type: ignore[no-any-return]


def get_json(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    """GET `url` (with a bearer token if given): its status and JSON body, errors too."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)

"""Flower, as the compose file runs it, sees the worker through Celery's task events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess, free_port
from tests.helpers import EventReader, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def flower(services: Services, worker: WorkerProcess) -> Iterator[str]:
    port = free_port()
    log = (services.data_dir / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", f"--broker={services.broker_url}", "flower",
         f"--port={port}", "--address=127.0.0.1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # Flower 2 serves its HTTP API only when told to (compose sets the same).
        env={**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _get(url + "/healthcheck") == "OK", 60), "flower did not start"
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
    except OSError:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body


def test_flower_lists_the_running_worker(flower: str) -> None:
    workers = wait_until(lambda: _get(flower + "/api/workers?refresh=1"), 60)
    assert any(node.startswith("quota0-") for node in workers or {}), workers


def test_flower_sees_the_tasks_the_worker_ran(
    flower: str, customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory()
    order = customer.order(expected=10, new=20)
    events.wait_for("mail.quota.change.accepted", order_id=order["order_id"])

    def seen() -> bool:
        tasks = _get(flower + "/api/tasks?taskname=quota.request_change") or {}
        return any(t.get("state") == "SUCCESS" for t in tasks.values())

    assert wait_until(seen, 60)

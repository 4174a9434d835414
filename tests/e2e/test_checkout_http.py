"""docs/examples/checkout_http.py, the checkout of docs/INTEGRATION.md, against a real
`quota-worker api` and worker: a refused quote shows its sentence and sends nothing; an
allowed one orders with the B it read, is paid and followed over HTTP until applied."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess, stop_worker
from tests.e2e.test_api import ApiProcess, start_api

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "checkout_http.py"
TOKEN = "e2e-shop-" + "s" * 24


@pytest.fixture(scope="module")
def shop_api(services: Services) -> Iterator[ApiProcess]:
    api = start_api(services, "api-checkout.log", QUOTA_API_TOKENS=f"shop:read:{TOKEN}")
    yield api
    assert stop_worker(WorkerProcess(api.process, api.log_path)) == 0


def _checkout(services: Services, api: ApiProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QUOTA_API_URL": api.base,
        "QUOTA_API_TOKEN": TOKEN,
        "QUOTA_BROKER_URL": services.broker_url,
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_a_refused_quote_shows_the_customer_its_detail_and_orders_nothing(
    services: Services, shop_api: ApiProcess, customer_factory: Any
) -> None:
    customer = customer_factory(plan="premium", limit=10)
    customer.addresses(7)
    done = _checkout(services, shop_api, customer.mail, customer.account, "6", "0")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "7 addresses created (A), limit 10 (B)" in done.stdout
    assert "not possible: 7 addresses exist; delete 1 before lowering the limit to 6." in (
        done.stdout
    )
    assert "order " not in done.stdout


def test_an_allowed_quote_is_ordered_paid_and_followed_until_applied(
    services: Services, shop_api: ApiProcess, customer_factory: Any
) -> None:
    customer = customer_factory(plan="premium", limit=10)
    done = _checkout(services, shop_api, customer.mail, customer.account, "20", "1500", "--pay")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("0 addresses created (A), limit 10 (B), plan premium")
    assert lines[1].startswith("allowed: premium")
    assert [line.split(": ")[1] for line in lines if line.startswith("order ")][-2:] == [
        "awaiting_payment",
        "applied",
    ]


def test_the_guides_checkout_is_the_example_that_runs() -> None:
    """docs/INTEGRATION.md shows the example's `checkout` as it is, up to its last lines."""
    guide = (ROOT / "docs" / "INTEGRATION.md").read_text()
    shown = guide.split("## Checkout over HTTP")[1].split("```python\n")[1].split("```")[0]
    assert shown.endswith("        ...\n")
    assert shown.removesuffix("        ...\n") in EXAMPLE.read_text()

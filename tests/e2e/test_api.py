"""A real `quota-worker api` process over real HTTP: the probes, a /v1 call on what the real
worker stored, its JSON request log, and its refusals at start."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess, free_port, stop_worker
from tests.helpers import get_json, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "e2e-checkout-" + "t" * 24


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
        return get_json(self.base + path, token)

    def log_records(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def _up(api: ApiProcess) -> bool:
    try:
        return api.get("/healthz", token=None)[0] == 200
    except OSError:
        return False


def start_api(services: Services, log_name: str, **env: str) -> ApiProcess:
    port = free_port()
    log_path = services.data_dir / log_name
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "api"],
        env=services.worker_env(QUOTA_API_PORT=str(port), **env),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = ApiProcess(process, f"http://127.0.0.1:{port}", log_path)
    if not wait_until(lambda: process.poll() is not None or _up(api), 60, step=0.2) or (
        process.poll() is not None
    ):
        process.kill()
        raise RuntimeError(f"quota-worker api did not come up:\n{log_path.read_text()}")
    return api


@pytest.fixture(scope="module")
def api(services: Services) -> Iterator[ApiProcess]:
    api = start_api(services, "api.log", QUOTA_API_TOKENS=f"checkout:read:{TOKEN}")
    yield api
    assert stop_worker(WorkerProcess(api.process, api.log_path)) == 0


def test_healthz_and_readyz_answer_over_http(api: ApiProcess) -> None:
    assert api.get("/healthz", token=None) == (200, {"status": "ok"})
    status, body = api.get("/readyz", token=None)
    assert (status, body["ready"]) == (200, True), body


def test_a_service_mail_provisioned_through_the_queue_is_read_over_http(
    api: ApiProcess, customer_factory: Any
) -> None:
    customer = customer_factory(plan="premium", limit=10)
    customer.addresses(2)
    status, body = api.get(f"/v1/service-mails/{customer.mail}")
    assert status == 200
    assert (body["account_id"], body["address_limit"], body["addresses_in_use"]) == (
        customer.account,
        10,
        2,
    )


def test_each_request_is_a_json_log_line_naming_the_token_not_holding_it(
    api: ApiProcess,
) -> None:
    api.get("/v1/service-mails/sm-e2e-nobody")
    logged = lambda: [  # noqa: E731
        r for r in api.log_records()
        if r.get("event") == "api_request" and r.get("path") == "/v1/service-mails/sm-e2e-nobody"
    ]  # fmt: skip
    lines = wait_until(logged, 10)
    assert lines and (lines[-1]["token_name"], lines[-1]["status"]) == ("checkout", 404)
    assert TOKEN not in api.log_path.read_text()


def test_with_no_token_configured_it_says_how_to_set_one_and_refuses_v1(
    services: Services,
) -> None:
    api = start_api(services, "api-no-tokens.log")
    try:
        status, body = api.get("/v1/service-mails/sm-1")
        assert (status, body["error"]) == (401, "unauthorized")
        warned = [r for r in api.log_records() if r.get("event") == "api_no_tokens"]
        assert warned and "QUOTA_API_TOKENS" in warned[0]["fix"]
    finally:
        stop_worker(WorkerProcess(api.process, api.log_path))


def test_a_bad_token_list_stops_it_at_start_naming_the_entry_not_the_token(
    services: Services,
) -> None:
    secret = "s" * 30
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "api"],
        env=services.worker_env(QUOTA_API_TOKENS=f"checkout:admin:{secret}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "QUOTA_API_TOKENS: entry 1 (checkout): the scope must be read or operate" in done.stderr
    assert secret not in done.stderr + done.stdout

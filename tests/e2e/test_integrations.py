"""What other teams get: the Python client, raw producers in other languages, the
consumer helper's examples and the versioning rule, each against the real worker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from events.client import QuotaClient
from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess
from tests.e2e.producer import NOW, Producer
from tests.helpers import EventReader, new_id, wait_until
from tests.node import node_project

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def client(services: Services) -> Any:
    with QuotaClient(services.broker_url) as quota:
        yield quota


def test_the_python_client_drives_a_paid_raise(
    client: QuotaClient, customer_factory: Any, events: EventReader
) -> None:
    customer = customer_factory(limit=10)
    order_id = new_id("ord")
    client.request_change(request_id=new_id("req"), order_id=order_id,
                          account_id=customer.account, service_mail_id=customer.mail,
                          expected_address_limit=10, new_address_limit=25, amount_due=2000,
                          currency="EUR")  # fmt: skip
    events.wait_for("mail.quota.change.accepted", order_id=order_id)
    client.confirm_payment(payment_id=new_id("pay"), order_id=order_id, amount=2000,
                           currency="EUR")  # fmt: skip
    changed = events.wait_for("mail.quota.changed", order_id=order_id)
    assert changed["data"]["address_limit"] == 25


def test_the_python_client_provisions_and_counts_addresses(
    client: QuotaClient, customer_factory: Any, db: Engine
) -> None:
    mail = new_id("sm")
    client.provision(service_mail_id=mail, account_id=new_id("acc"), plan="premium",
                     address_limit=10)  # fmt: skip
    client.address_created(service_mail_id=mail, address="Anna@Example.ch")
    client.address_created(service_mail_id=mail, address="ben@example.ch")
    client.address_deleted(service_mail_id=mail, address="anna@example.ch")

    def addresses() -> list[str]:
        with db.connect() as conn:
            rows = conn.execute(
                text("SELECT address FROM addresses WHERE service_mail_id = :m"), {"m": mail}
            )
            return [r[0] for r in rows]

    assert wait_until(lambda: addresses() == ["ben@example.ch"], 30), addresses()
    client.addresses_snapshot(service_mail_id=mail, addresses=["Cleo@Example.ch", "ben@example.ch"])
    assert wait_until(lambda: sorted(addresses()) == ["ben@example.ch", "cleo@example.ch"], 30)


def _wait_applied(events: EventReader, order_id: str) -> dict[str, Any]:
    return events.wait_for("mail.quota.changed", timeout=60, order_id=order_id)


def test_a_raw_redis_message_built_by_a_shell_script_is_applied(
    services: Services, customer_factory: Any, events: EventReader
) -> None:
    broker = services.broker_url
    if not broker.startswith(("redis://", "redis+socket://")):
        pytest.skip(f"the raw Redis envelope needs a Redis broker, not {broker.split(':')[0]}")
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed")
    if broker.startswith("redis+socket://"):
        cli_args = f"-s {broker.removeprefix('redis+socket://')}"
    else:
        host_port, _, db = broker.removeprefix("redis://").partition("/")
        host, _, port = host_port.rpartition("@")[2].partition(":")
        cli_args = f"-h {host} -p {port or 6379} -n {db or 0}"
    customer = customer_factory(limit=10)
    order_id = new_id("ord")
    done = subprocess.run(
        [str(EXAMPLES / "raw-redis" / "send_request.sh"), customer.mail, customer.account,
         "10", "7", "0", order_id],
        env={**os.environ, "REDIS_CLI_ARGS": cli_args}, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["order_id"] == order_id
    changed = _wait_applied(events, order_id)
    assert changed["data"]["previous_address_limit"] == 10
    assert changed["data"]["address_limit"] == 7


def test_a_node_checkout_with_celery_node_is_applied(
    services: Services, customer_factory: Any, events: EventReader
) -> None:
    project = node_project(EXAMPLES / "node")
    customer = customer_factory(limit=10)
    order_id = new_id("ord")
    done = subprocess.run(
        ["node", str(project / "checkout.mjs"), "--service-mail", customer.mail,
         "--account", customer.account, "--from", "10", "--to", "30", "--amount", "2500",
         "--order", order_id],
        env={**os.environ, "QUOTA_BROKER_URL": services.broker_url}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    assert sent["order_id"] == order_id and sent["payment_task_id"]
    changed = _wait_applied(events, order_id)
    assert changed["data"]["address_limit"] == 30


def test_a_version_2_message_is_refused_cleanly_and_version_1_goes_on(
    producer: Producer, customer_factory: Any, events: EventReader, db: Engine
) -> None:
    """How a future `schema_version` 2 arrives today: refused as invalid, kept, nothing applied."""
    customer = customer_factory(limit=10)
    ids = {"request_id": new_id("req"), "order_id": new_id("ord")}
    v2 = dict(
        schema_version=2, **ids, account_id=customer.account, service_mail_id=customer.mail,
        expected_address_limit=10, new_address_limit=20,
        amount_due={"value": 1500, "currency": "CHF"}, requested_at=NOW,
    )  # fmt: skip
    message_id = producer.send("quota.request_change", **v2)
    rejected = events.wait_for("mail.quota.change.rejected", order_id=ids["order_id"])
    assert rejected["data"]["reason"] == "invalid_message"
    assert "schema_version" in rejected["data"]["detail"]

    def dead_letter() -> Any:
        with db.connect() as conn:
            return conn.execute(
                text("SELECT error FROM dead_letters WHERE message_id = :m"), {"m": message_id}
            ).first()

    letter = wait_until(dead_letter, 30)
    assert letter and "schema_version" in letter[0]
    assert not events.of_type("mail.quota.changed", order_id=ids["order_id"])
    good = customer.order(expected=10, new=12, amount=0)
    _wait_applied(events, good["order_id"])


def _run_example(name: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_the_examples_play_against_the_real_worker(
    services: Services, worker: WorkerProcess, db: Engine
) -> None:
    env = {
        **os.environ,
        "QUOTA_BROKER_URL": services.broker_url,
        "QUOTA_REDIS_URL": services.redis_url,
        "QUOTA_EVENTS_STREAM": services.stream,
    }
    tag = new_id("ex")
    consumer = _run_example("downstream_consumer.py", env, "--group", new_id("dashboard"))
    try:
        provisioned = _run_example("checkout_simulator.py", env, "--tag", tag, "--phase",
                                   "provision")  # fmt: skip
        out, err = provisioned.communicate(timeout=60)
        assert provisioned.returncode == 0, err
        mails = json.loads(out)["provisioned"]

        def all_provisioned() -> bool:
            with db.connect() as conn:
                rows = conn.execute(text("SELECT id FROM service_mails")).scalars().all()
            return set(mails) <= set(rows)

        assert wait_until(all_provisioned, 30)
        orders = _run_example("checkout_simulator.py", env, "--tag", tag, "--phase", "orders")
        out, err = orders.communicate(timeout=60)
        assert orders.returncode == 0, err
        expected = {p["order_id"]: p["expect"] for p in map(json.loads, out.splitlines())}
        assert len(expected) == 5
    finally:
        os.set_blocking(consumer.stdout.fileno(), False)  # type: ignore[union-attr]
    seen: dict[str, set[str]] = {}

    def all_seen() -> bool:
        for line in iter(consumer.stdout.readline, ""):  # type: ignore[union-attr]
            event = json.loads(line)
            seen.setdefault(event["data"].get("order_id", ""), set()).add(event["type"])
        return all(kind in seen.get(order, set()) for order, kind in expected.items())

    try:
        assert wait_until(all_seen, 60, step=0.2), f"expected {expected}, saw {seen}"
    finally:
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=30) == 0, consumer.stderr.read()  # type: ignore[union-attr]

"""schemathesis against a live `quota-worker api` process, from its own /openapi.json: for
every operation, generated calls (valid and invalid, with an `operate` token, on a Service
Mail the real worker stored with a change awaiting payment) never answer 5xx, and every
answer's status, content type, headers and body are the ones the document promises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from sqlalchemy import Engine, text

from tests.conftest import Services
from tests.e2e.conftest import Customer, WorkerProcess, stop_worker
from tests.e2e.producer import Producer
from tests.e2e.test_api import ApiProcess, start_api
from tests.helpers import new_id, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "e2e-oncall-" + "o" * 24
MAX_EXAMPLES = 40  # per operation and phase: the six operations take well under a minute


@pytest.fixture(scope="module")
def known(producer: Producer, db: Engine, worker: WorkerProcess) -> dict[str, str]:
    """A Service Mail (premium, B=10, A=2) with a change to 15 awaiting payment."""
    customer = Customer(new_id("sm"), new_id("acc"), producer, db)
    producer.provision(customer.mail, customer.account, "premium", 10, None)
    customer.addresses(2)
    ids = customer.order(expected=10, new=15)

    def pending() -> bool:
        with db.connect() as conn:
            found = conn.execute(
                text("SELECT state FROM quota_changes WHERE order_id = :o"),
                {"o": ids["order_id"]},
            ).scalar()
        return found == "awaiting_payment"

    assert wait_until(pending, 30), f"the change does not await payment:\n{worker.tail()}"
    return {"service_mail_id": customer.mail, "account_id": customer.account, **ids}


@pytest.fixture(scope="module")
def live_api(services: Services, known: dict[str, str]) -> Iterator[ApiProcess]:
    api = start_api(services, "api-schemathesis.log", QUOTA_API_TOKENS=f"oncall:operate:{TOKEN}")
    yield api
    assert stop_worker(WorkerProcess(api.process, api.log_path)) == 0


# The committed document (tests/unit/test_contract.py holds it to the code, so it is the
# one the live server serves); loaded at import, as schemathesis' pytest plugin needs.
schema = schemathesis.openapi.from_path(Path(__file__).parents[2] / "contract" / "openapi.json")
KNOWN: dict[str, str] = {}  # filled by the `seeded` fixture before any case is generated


@schema.auth()
class OperatorToken:
    """The bearer token on every case, except those generated without it on purpose."""

    def get(self, _case: schemathesis.Case, _context: Any) -> str:
        return TOKEN

    def set(self, case: schemathesis.Case, data: str, _context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _name_stored(case: schemathesis.Case) -> schemathesis.Case:
    """The valid ids and account of a case replaced by the ones the worker stored."""
    if case.path_parameters and not case.meta.is_negative_at(ParameterLocation.PATH):
        case.path_parameters = {k: KNOWN.get(k, v) for k, v in case.path_parameters.items()}
    query = case.query or {}
    if "account_id" in query and not case.meta.is_negative_at(ParameterLocation.QUERY):
        case.query = {**query, "account_id": KNOWN["account_id"]}
    return case


# Random ids would only ever meet 404s: half the calls name what the worker stored.
@schema.hook
def flatmap_case(_context: Any, case: schemathesis.Case) -> Any:
    return st.booleans().map(lambda stored: _name_stored(case) if stored else case)


@pytest.fixture
def seeded(live_api: ApiProcess, known: dict[str, str]) -> str:
    KNOWN.update(known)
    return live_api.base


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # no example database left in the tree
)
def test_every_generated_call_is_answered_as_the_openapi_document_says(
    case: schemathesis.Case, seeded: str
) -> None:
    case.call_and_validate(base_url=seeded, timeout=10)

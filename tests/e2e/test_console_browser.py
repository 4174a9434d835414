"""The console in a real browser (Debian's Chromium driven by Playwright) against a real
`quota-worker api` and a real worker: sign in through the form, see a change awaiting
payment and its trail, find a hostile dead letter inert, replay one and see it applied,
discard another with a reason, and find no action offered to a `read` token.

With QUOTA_SCREENSHOTS=1 it saves docs/img/console-{overview,trail,dead-letters}.png.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text

from tests.conftest import Services
from tests.e2e.conftest import WorkerProcess, stop_worker
from tests.e2e.test_api import ApiProcess, start_api
from tests.helpers import new_id, wait_until
from worker.adapters import tables as t

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
# CI installs the browser and sets QUOTA_REQUIRE_BROWSER=1, so there a missing one fails.
if not Path(CHROMIUM).exists() and not os.environ.get("QUOTA_REQUIRE_BROWSER"):
    pytest.skip(
        f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) "
        "to run the console's browser test",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (pinned)")

OPERATE = "e2e-oncall-" + "o" * 24
READ = "e2e-viewer-" + "r" * 24
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "img" if os.environ.get("QUOTA_SCREENSHOTS") == "1" else None
HOSTILE = (
    '{"args": [], "kwargs": {"note": "<script>window.__pwned = 1; alert(1)</script>'
    '\\"><img src=x onerror=\\"window.__pwned = 2; alert(2)\\">"}}'
)


@pytest.fixture(scope="module")
def console(services: Services, worker: WorkerProcess) -> Iterator[ApiProcess]:
    api = start_api(services, "api-console.log",
                    QUOTA_API_TOKENS=f"oncall:operate:{OPERATE},viewer:read:{READ}")  # fmt: skip
    yield api
    assert stop_worker(WorkerProcess(api.process, api.log_path)) == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        # Debian's build, never one Playwright downloads; as root Chromium needs --no-sandbox.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _store_letter(db: Engine, body: str, error: str, task: str = "quota.request_change") -> int:
    """A dead letter as the worker keeps one (tests/e2e/test_operations.py stores them too)."""
    letters = t.dead_letters
    row = {"message_id": new_id("msg"), "task": task, "body": body,
           "body_size": len(body.encode()), "content_type": "application/json",
           "error": error, "created_at": datetime.now(UTC), "status": "stored"}  # fmt: skip
    with db.begin() as conn:
        return int(conn.execute(insert(letters).values(**row).returning(letters.c.id)).scalar_one())


class Tab:
    """One browser tab on the console, counting every dialog a script might open."""

    def __init__(self, browser: Any, api: ApiProcess) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 860})
        self.base, self.dialogs = api.base, list[str]()
        self.page.on(
            "dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss())
        )

    def sign_in(self, token: str) -> None:
        self.page.goto(self.base + "/console/")
        assert self.page.url.endswith("/console/sign-in")
        self.page.fill("input[name=token]", token)
        self.page.click("form.stack button[type=submit]")
        self.page.wait_for_url(self.base + "/console/")

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        return self.page

    def shot(self, name: str) -> None:
        if SHOTS is not None:
            SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SHOTS / f"console-{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.close()


def test_an_operator_finds_and_fixes_a_stuck_change_and_dead_letters_in_a_browser(
    console: ApiProcess, browser: Any, customer_factory: Any, db: Engine
) -> None:
    customer, other = customer_factory(limit=10), customer_factory(limit=10)
    stuck = customer.order(expected=10, new=20)
    assert wait_until(lambda: _state(db, stuck["order_id"]) == "awaiting_payment", 30)
    hostile = _store_letter(db, HOSTILE, 'invalid_message: "><b>not json</b>')
    order = {"request_id": new_id("req"), "order_id": new_id("ord")}
    payload = {"schema_version": 1, **order, "account_id": other.account,
               "service_mail_id": other.mail, "expected_address_limit": 10,
               "new_address_limit": 30, "amount_due": 100, "currency": "CHF",
               "requested_at": "2026-11-24T10:00:00+00:00"}  # fmt: skip
    fixable = _store_letter(db, json.dumps({"args": [], "kwargs": payload}), "transient: test")
    tab = Tab(browser, console)
    tab.sign_in(OPERATE)
    page = tab.page
    assert "awaiting_payment" in page.content()
    tab.shot("overview")

    tab.open("/console/changes")
    page.click(f"a:has-text('{stuck['request_id']}')")
    assert "awaiting_payment" in page.inner_text("h1")
    assert "mail.quota.change.accepted" in page.inner_text("table.rows")
    tab.shot("trail")

    tab.open("/console/dead-letters")
    body = page.inner_text(f"#letter-{hostile} pre.body")
    assert "<script>window.__pwned = 1" in body and '"><img src=x onerror=' in body
    assert page.locator("pre.body script, pre.body img, p.error b").count() == 0
    assert page.evaluate("window.__pwned") is None and tab.dialogs == []
    tab.shot("dead-letters")

    tab.open(f"/console/dead-letters/{fixable}")
    page.click("text=Replay through the normal path")
    assert "Sent again" in page.inner_text("p.notice")
    assert wait_until(lambda: _state(db, order["order_id"]) == "awaiting_payment", 30)
    tab.open(f"/console/changes/{order['order_id']}")
    assert f"replay-{fixable}" in page.inner_text("table.rows")

    tab.open(f"/console/dead-letters/{hostile}")
    page.fill("form[action$='/discard'] input[name=reason]", "hostile test data")
    page.click("button:has-text('Discard')")
    assert "Discarded" in page.inner_text("p.notice")
    assert "oncall: hostile test data" in page.inner_text("dl.facts")
    assert page.evaluate("window.__pwned") is None and tab.dialogs == []
    tab.close()


def _state(db: Engine, order_id: str) -> str | None:
    with db.connect() as conn:
        return conn.execute(
            text("SELECT state FROM quota_changes WHERE order_id = :o"), {"o": order_id}
        ).scalar()


def test_a_read_token_sees_the_console_but_is_offered_no_action(
    console: ApiProcess, browser: Any, db: Engine
) -> None:
    letter = _store_letter(db, '{"args": [], "kwargs": {}}', "validation: read test")
    tab = Tab(browser, console)
    tab.sign_in(READ)
    page = tab.open(f"/console/dead-letters/{letter}")
    assert "viewer · read" in page.inner_text("header")
    assert page.locator("form[action$='/discard'], form[action$='/replay']").count() == 0
    # The session's real CSRF token (the sign-out form's): refused for its scope, not as stale.
    csrf = page.input_value("form.who input[name=csrf]")
    answer = page.request.post(
        f"{console.base}/console/dead-letters/{letter}/discard",
        form={"reason": "sneaky", "csrf": csrf},
    )
    assert answer.status == 403 and "acting needs operate" in answer.text()
    assert "viewer" in answer.text() and "stale" not in answer.text()
    tab.close()

"""The console's sign-in, session cookie, headers and pages, over the suite's database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog.testing
from fastapi.testclient import TestClient
from httpx2 import Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tests.helpers import new_id
from tests.integration.api_client import OPERATE_TOKEN, READ_TOKEN
from tests.integration.conftest import Clock
from tests.integration.console_client import HOSTILE_BODY, csrf_of, sign_in, tags_in
from tests.integration.shop import Shop
from worker.api.app import create_app
from worker.bootstrap import Container


@pytest.fixture
def browser(app: Container, clock: Clock) -> Iterator[TestClient]:
    """The console as a browser without a session sees it."""
    with TestClient(create_app(app, now=clock)) as client:
        yield client


@pytest.fixture
def operator(browser: TestClient) -> TestClient:
    assert sign_in(browser, OPERATE_TOKEN).status_code == 303
    return browser


def test_without_a_session_every_page_sends_the_browser_to_sign_in(browser: TestClient) -> None:
    for path in ("/console/", "/console/changes", "/console/payments", "/console/dead-letters"):
        answer = browser.get(path, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (303, "/console/sign-in")


def test_an_operate_token_signs_in_to_an_httponly_samesite_strict_cookie_without_the_token(
    browser: TestClient,
) -> None:
    answer = sign_in(browser, OPERATE_TOKEN)
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/")
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("quota_console=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # served over http here
    assert OPERATE_TOKEN not in cookie and cookie.startswith("quota_console=oncall|")


def test_over_https_the_session_cookie_is_secure(app: Container, clock: Clock) -> None:
    with TestClient(create_app(app, now=clock), base_url="https://testserver") as client:
        answer = sign_in(client, READ_TOKEN)
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("quota_console=")
    )
    assert "Secure" in cookie


def _sign_in_through(proxied: object) -> Response:
    """Sign in as a browser on https would, through `proxied`; the client speaks http, so
    the sign-in cookie (Secure over https) is sent by hand."""
    https = {"X-Forwarded-Proto": "https", "Origin": "https://testserver"}
    with TestClient(proxied, headers=https) as client:  # type: ignore[arg-type]
        form = client.get("/console/sign-in")
        csrf = csrf_of(form.text)
        return client.post(
            "/console/sign-in",
            data={"csrf": csrf, "token": READ_TOKEN},
            headers={"Cookie": f"quota_console_sign_in={csrf}"},
            follow_redirects=False,
        )


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure_and_forms_are_accepted(
    app: Container, clock: Clock
) -> None:
    """`quota-worker api` runs uvicorn with proxy_headers: its ProxyHeadersMiddleware makes a
    trusted proxy's X-Forwarded-Proto the request's scheme (FORWARDED_ALLOW_IPS)."""
    trusted = ProxyHeadersMiddleware(create_app(app, now=clock), trusted_hosts="testclient")
    answer = _sign_in_through(trusted)
    assert answer.status_code == 303
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("quota_console=")
    )
    assert "Secure" in cookie
    untrusted = ProxyHeadersMiddleware(create_app(app, now=clock), trusted_hosts="127.0.0.1")
    # From elsewhere the header is ignored: the https Origin is then not this http server's.
    assert _sign_in_through(untrusted).status_code == 403


def test_an_unknown_token_is_refused_with_the_form_again_and_no_session(
    browser: TestClient,
) -> None:
    answer = sign_in(browser, "not-a-token-" + "x" * 20)
    assert answer.status_code == 401 and "not one of QUOTA_API_TOKENS" in answer.text
    assert "quota_console" not in browser.cookies
    assert browser.get("/console/", follow_redirects=False).status_code == 303


def test_a_sign_in_without_the_forms_token_is_refused(browser: TestClient) -> None:
    answer = browser.post("/console/sign-in", data={"token": OPERATE_TOKEN, "csrf": "x" * 32})
    assert answer.status_code == 403 and "quota_console" not in browser.cookies


def test_a_forged_or_altered_session_cookie_is_no_session(browser: TestClient) -> None:
    sign_in(browser, READ_TOKEN)
    _name, expires, nonce, mac = browser.cookies["quota_console"].split("|")
    for forged in (f"oncall|{expires}|{nonce}|{mac}", f"checkout|{int(expires) + 9}|{nonce}|{mac}"):
        browser.cookies.clear()
        browser.cookies.set("quota_console", forged, path="/console")
        assert browser.get("/console/payments", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session(operator: TestClient) -> None:
    from tests.integration.console_client import csrf_of

    csrf = csrf_of(operator.get("/console/payments").text)
    assert operator.post("/console/sign-out", data={"csrf": csrf}).status_code == 200
    assert operator.get("/console/payments", follow_redirects=False).status_code == 303


def test_every_page_has_a_strict_content_security_policy_and_no_framing(
    operator: TestClient,
) -> None:
    for path in ("/console/sign-in", "/console/", "/console/dead-letters"):
        headers = operator.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_the_pages_load_no_script_and_only_their_own_stylesheet(operator: TestClient) -> None:
    tags = tags_in(operator.get("/console/").text)
    assert [t for t, _ in tags if t == "script"] == []
    assert [a["href"] for t, a in tags if t == "link"] == ["/console/static/console.css"]
    assert operator.get("/console/static/console.css").status_code == 200


def test_the_overview_shows_the_status_figures_and_problems_and_refreshes(
    app: Container, operator: TestClient
) -> None:
    app.bus.dead_letter(message_id=None, task="quota.request_change", body="{}", error="oops")
    html = operator.get("/console/").text
    assert '<meta http-equiv="refresh" content="10">' in html
    assert "awaiting_payment" in html and "dead letters wait for an operator" in html


def test_a_read_token_sees_the_pages_but_is_offered_no_action(
    app: Container, browser: TestClient
) -> None:
    app.bus.dead_letter(message_id=None, task="quota.request_change", body="{}", error="read")
    letter = Shop(app).dead_letters  # noqa: F841 - the letter is found by the list below
    sign_in(browser, READ_TOKEN)
    listing = browser.get("/console/dead-letters").text
    first = listing.split('href="/console/dead-letters/')[1].split('"')[0]
    page = browser.get(f"/console/dead-letters/{first}").text
    assert "checkout · read" in page
    assert "/discard" not in page and "/replay" not in page


def test_a_hostile_dead_letter_body_is_shown_as_inert_escaped_text(
    app: Container, operator: TestClient
) -> None:
    message_id = new_id("msg")
    app.bus.dead_letter(
        message_id=message_id, task="quota.request_change", body=HOSTILE_BODY, error="<b>bad</b>"
    )
    letter = Shop(app).dead_letters(message_id)[0].id
    for path in ("/console/dead-letters", "/console/dead-letters?status=all",
                 f"/console/dead-letters/{letter}"):  # fmt: skip
        html = operator.get(path).text
        tags = [t for t, _ in tags_in(html)]
        assert "script" not in tags and "img" not in tags and "b" not in tags
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
        assert "&lt;img src=x onerror=" in html and "&#34;&gt;" in html
        assert "\\x1b[2J\\u202e" in html and "\x1b" not in html and "\u202e" not in html


def test_the_console_answers_at_its_address_without_the_trailing_slash(
    operator: TestClient,
) -> None:
    answer = operator.get("/console", follow_redirects=True)
    assert answer.status_code == 200 and answer.url.path == "/console/"


def test_requests_are_logged_with_the_tokens_name_never_the_token(browser: TestClient) -> None:
    # Log dicts, not stdout: which stream a cached logger writes to depends on test order.
    with structlog.testing.capture_logs() as logs:
        sign_in(browser, OPERATE_TOKEN)
        browser.get("/console/payments")
    signed_in = [line for line in logs if line["event"] == "console_signed_in"]
    assert [line["token_name"] for line in signed_in] == ["oncall"]
    assert OPERATE_TOKEN not in repr(logs)

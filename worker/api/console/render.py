"""What every console page shares: the templates, the headers, who is signed in, the forms.

Templates autoescape everything; stored values pass `printable` too (the `p` filter), so a
control or bidi character shows as an escape, as on the CLI.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

import structlog
from fastapi import Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined

import worker.api.console.session as sessions
from worker.api.console.session import Session
from worker.api.tokens import TokenSet
from worker.ops.safe_text import printable

log = structlog.get_logger("worker.api")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 20
DISCARD_REASON_MAX = 500  # kept in dead_letters.resolution (text)
# A dead letter's id is a BIGINT: a bigger one is no letter (422), never a database error.
LetterId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _when(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="seconds")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


env = Environment(
    loader=PackageLoader("worker.api.console", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(p=printable, when=_when, seconds=_seconds)


class ConsoleError(Exception):
    """Answered as an HTML page with its status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""


def page(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    html = env.get_template(template).render(
        session=getattr(request.state, "console_session", None), **context
    )
    return HTMLResponse(html, status_code=code, headers=HEADERS)


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=HEADERS)


def error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SignInRequired):
        return redirect("/console/sign-in")
    assert isinstance(exc, ConsoleError)
    return page(request, "error.html", exc.status, title=exc.title, detail=exc.detail)


def current_session(request: Request) -> Session:
    """A dependency: the signed-in session (else to the sign-in page); the request log names
    its token."""
    tokens: TokenSet = request.app.state.tokens
    found = sessions.verify(request.cookies.get(sessions.COOKIE), tokens, time.time())
    if found is None:
        raise SignInRequired
    request.state.token_name = found.name
    request.state.console_session = found
    return found


async def form(request: Request) -> dict[str, str]:
    """A dependency: an url-encoded form, at most MAX_FORM_BYTES (parsed here: Starlette's
    form parser needs python-multipart, and these forms are a few short fields)."""
    if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
        raise ConsoleError(415, "Not a form", "This page takes an url-encoded form.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ConsoleError(413, "Form too large", "The form is over 16 KiB.")
    try:
        fields = parse_qsl(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:  # more fields than that
        raise ConsoleError(
            400, "Too many fields", f"A console form has at most {MAX_FORM_FIELDS} fields."
        ) from exc
    return dict(fields)


def checked(request: Request, session: Session, fields: dict[str, str], action: str) -> None:
    """Refuse an action unless it comes from this console (Origin, CSRF token) and the
    session may act; a refusal is logged, and changes nothing."""
    if not sessions.same_origin(request) or not session.csrf_matches(fields.get("csrf")):
        log.warning("console_refused", action=action, why="csrf", token_name=session.name)
        raise ConsoleError(
            403, "Refused", "This form is stale or did not come from this console: reload it."
        )
    if not session.may_act:
        log.warning("console_refused", action=action, why="scope", token_name=session.name)
        raise ConsoleError(
            403,
            "Not allowed",
            f"The token {session.name} has scope {session.token.scope}; acting needs operate.",
        )


def reason_of(fields: dict[str, str], limit: int) -> str:
    """The form's reason, its runs of whitespace made one space, at most `limit` characters
    (where it goes: a cancel's is the contract's `reason`, at most 200)."""
    reason = " ".join(fields.get("reason", "").split())
    if not reason:
        raise ConsoleError(422, "A reason is needed", "Say why: the reason is recorded.")
    if len(reason) > limit:
        raise ConsoleError(
            422, "Reason too long",
            f"The reason has {len(reason)} characters: keep it to at most {limit}.",
        )  # fmt: skip
    return reason

"""The console's forms (POST): sign in and out, replay or discard a dead letter, cancel or
expire a stuck change. Every action checks the session, its CSRF token and its scope, then
calls the operator function the CLI calls, with the token's name as the operator."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

import worker.api.console.session as sessions
from worker.api.console.pages import celery_of, container_of
from worker.api.console.render import (
    DISCARD_REASON_MAX,
    ConsoleError,
    LetterId,
    checked,
    current_session,
    form,
    page,
    reason_of,
    redirect,
)
from worker.api.console.session import Session
from worker.api.tokens import TokenSet
from worker.ops import change_requests, dead_letters
from worker.ops.safe_text import printable

log = structlog.get_logger("worker.api")
router = APIRouter(prefix="/console", include_in_schema=False)
Signed = Annotated[Session, Depends(current_session)]
Form = Annotated[dict[str, str], Depends(form)]


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> Response:
    token = sessions.sign_in_token(request)
    response = page(request, "sign_in.html", error=None, csrf=token)
    sessions.set_sign_in_token(response, request, token)
    return response


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(request: Request, fields: Form) -> Response:
    """A token of QUOTA_API_TOKENS, read or operate, opens a session in its name."""
    if not sessions.same_origin(request) or not sessions.sign_in_token_matches(
        request, fields.get("csrf")
    ):
        raise ConsoleError(403, "Refused", "This form is stale: open the sign-in page again.")
    tokens: TokenSet = request.app.state.tokens
    token = tokens.find(fields.get("token", "").strip()) if tokens else None
    if token is None:
        log.warning("console_sign_in_refused")  # never the token presented
        answer = page(request, "sign_in.html", 401, csrf=fields.get("csrf", ""),
                      error="This token is not one of QUOTA_API_TOKENS." if tokens else
                      "No token is configured on this server (QUOTA_API_TOKENS).")  # fmt: skip
        return answer
    request.state.token_name = token.name
    log.info("console_signed_in", token_name=token.name, scope=str(token.scope))
    response = redirect("/console/")
    sessions.set_session(response, request, sessions.issue(token, time.time()))
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: Signed, fields: Form) -> Response:
    if not session.csrf_matches(fields.get("csrf")):
        raise ConsoleError(403, "Refused", "This form is stale: reload the page.")
    response = redirect("/console/sign-in")
    sessions.clear_session(response, request)
    log.info("console_signed_out", token_name=session.name)
    return response


@router.post("/dead-letters/{letter_id}/replay")
def replay(request: Request, session: Signed, fields: Form, letter_id: LetterId) -> Response:
    checked(request, session, fields, "replay")
    try:
        message_id = dead_letters.replay_dead_letter(
            container_of(request), celery_of(request), letter_id, session.name
        )
    except dead_letters.NotReplayable as exc:
        raise ConsoleError(409, "Not replayed", printable(exc)) from exc
    log.info("console_replayed", letter_id=letter_id, message_id=message_id,
             token_name=session.name)  # fmt: skip
    return redirect(f"/console/dead-letters/{letter_id}?done=replayed")


@router.post("/dead-letters/{letter_id}/discard")
def discard(request: Request, session: Signed, fields: Form, letter_id: LetterId) -> Response:
    checked(request, session, fields, "discard")
    reason = reason_of(fields, DISCARD_REASON_MAX)
    container = container_of(request)
    if dead_letters.get_dead_letter(container, letter_id) is None:
        raise ConsoleError(404, "No such dead letter", f"No dead letter {letter_id} is kept.")
    try:  # conditional on the letter being stored still: of a replay and a discard one wins
        dead_letters.discard_dead_letter(container, letter_id, reason, session.name)
    except dead_letters.AlreadyHandled as exc:
        raise ConsoleError(409, "Already handled", f"Not discarded: {printable(exc)}.") from exc
    log.info("console_discarded", letter_id=letter_id, token_name=session.name)
    return redirect(f"/console/dead-letters/{letter_id}?done=discarded")


def _end(
    request: Request, session: Session, fields: dict[str, str], request_id: str, how: str
) -> Response:
    """Cancel or expire the change whose request_id the form posts to: by request_id only,
    never an order id that might be another change's request id."""
    checked(request, session, fields, how)
    reason = reason_of(fields, change_requests.REASON_MAX[how])
    actor = f"operator:{session.name}"  # as `quota-worker expire|cancel` records its user
    try:
        done = change_requests.end_stuck_change(
            container_of(request), request_id, how, reason, actor
        )
    except change_requests.NotAwaiting as exc:
        raise ConsoleError(409, "Nothing to end", str(exc)) from exc
    log.info("console_ended_change", how=how, request_id=request_id, done=done,
             token_name=session.name)  # fmt: skip
    outcome = ("cancelled" if how == "cancel" else "expired") if done else "unchanged"
    return redirect(f"/console/changes/{quote(request_id, safe='')}?done={outcome}")


@router.post("/changes/{request_id}/cancel")
def cancel(request: Request, session: Signed, fields: Form, request_id: str) -> Response:
    return _end(request, session, fields, request_id, "cancel")


@router.post("/changes/{request_id}/expire")
def expire(request: Request, session: Signed, fields: Form, request_id: str) -> Response:
    return _end(request, session, fields, request_id, "expire")

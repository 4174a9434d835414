"""The console's pages (GET): overview, changes, a change's trail, held payments, dead
letters. Read-only, through the operator functions of `worker.ops` the CLI uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from domain.model import ChangeState
from worker.api.console.render import ConsoleError, LetterId, current_session, page
from worker.api.console.session import Session
from worker.bootstrap import Container
from worker.ops import change_requests, dead_letters, queries

router = APIRouter(prefix="/console", include_in_schema=False)
Signed = Annotated[Session, Depends(current_session)]
STATES = [s.value for s in ChangeState]
LETTER_STATUSES = ("stored", "replayed", "discarded", "all")
AGES = {"": None, "10m": 600, "1h": 3600, "6h": 6 * 3600, "1d": 86400, "7d": 7 * 86400}
DONE = {  # what a redirect after an action may announce: a fixed vocabulary, never input
    "replayed": "Sent again through the normal path.",
    "discarded": "Discarded; the reason is recorded.",
    "cancelled": "Cancelled: the usual .cancelled event goes out.",
    "expired": "Expired: the usual .expired event goes out.",
    "unchanged": "Unchanged: it ended meanwhile.",
}
REFRESH_SECONDS = 10


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def celery_of(request: Request) -> Any:
    """The Celery app the console asks and publishes through, made once, on first use."""
    app = getattr(request.app.state, "celery", None)
    if app is None:
        from worker.entrypoints.app import create_app

        app = request.app.state.celery = create_app(container_of(request).settings)
    return app


def _done(done: str | None) -> str | None:
    return DONE.get(done or "")


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, _session: Signed) -> Response:
    status = queries.snapshot(container_of(request), celery_of(request), queries.Thresholds())
    return page(request, "overview.html", status=status, refresh=REFRESH_SECONDS, nav="overview")


@router.get("/changes", response_class=HTMLResponse)
def changes(
    request: Request,
    _session: Signed,
    state: str = ChangeState.AWAITING_PAYMENT.value,
    service_mail: Annotated[str, Query(max_length=64)] = "",
    account: Annotated[str, Query(max_length=64)] = "",
    older_than: str = "",
) -> Response:
    if state not in ("", *STATES) or older_than not in AGES:
        raise ConsoleError(400, "Unknown filter", "Choose a state and an age from the lists.")
    age = AGES[older_than]
    rows = change_requests.list_requests(
        container_of(request),
        state=state or None,
        service_mail=service_mail.strip() or None,
        account=account.strip() or None,
        older_than=timedelta(seconds=age) if age else None,
        limit=200,
        oldest_first=True,
    )
    filters = {"state": state, "service_mail": service_mail, "account": account,
               "older_than": older_than}  # fmt: skip
    return page(request, "changes.html", rows=rows, filters=filters, states=STATES,
                ages=list(AGES), nav="changes")  # fmt: skip


@router.get("/changes/{key}", response_class=HTMLResponse)
def trail(request: Request, _session: Signed, key: str, done: str | None = None) -> Response:
    found = change_requests.request_trail(container_of(request), key)
    if found is None:
        raise ConsoleError(404, "No such change", "No change request or message has this id.")
    change = found["change"]
    stuck = change is not None and change["state"] == ChangeState.AWAITING_PAYMENT.value
    entries = change_requests.timeline(found)
    return page(request, "trail.html", key=key, change=change, stuck=stuck, entries=entries,
                reason_max=change_requests.REASON_MAX, done=_done(done),
                nav="changes")  # fmt: skip


@router.get("/payments", response_class=HTMLResponse)
def payments(request: Request, _session: Signed) -> Response:
    rows = change_requests.held_payments(container_of(request))
    return page(request, "payments.html", rows=rows, nav="payments")


@router.get("/dead-letters", response_class=HTMLResponse)
def letters(
    request: Request,
    _session: Signed,
    status: str = "stored",
    task: Annotated[str, Query(max_length=255)] = "",
    done: str | None = None,
) -> Response:
    if status not in LETTER_STATUSES:
        raise ConsoleError(400, "Unknown filter", "Choose a status from the list.")
    rows = dead_letters.list_dead_letters(
        container_of(request), status=None if status == "all" else status,
        task=task.strip() or None, limit=100,
    )  # fmt: skip
    return page(request, "dead_letters.html", rows=rows, status=status, task=task,
                statuses=LETTER_STATUSES, done=_done(done), nav="letters")  # fmt: skip


@router.get("/dead-letters/{letter_id}", response_class=HTMLResponse)
def letter(
    request: Request, _session: Signed, letter_id: LetterId, done: str | None = None
) -> Response:
    found = dead_letters.get_dead_letter(container_of(request), letter_id)
    if found is None:
        raise ConsoleError(404, "No such dead letter", f"No dead letter {letter_id} is kept.")
    return page(request, "dead_letter.html", letter=found, done=_done(done), nav="letters")

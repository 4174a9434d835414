"""The calls of CONTRACT.md's "Asking the service (HTTP)": probes, and /v1 (read scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from domain.plans import PlanTable
from events.inbound import Limit
from worker.api import reads
from worker.api.auth import require
from worker.api.errors import ApiError, responses
from worker.api.models import (
    ChangeView,
    EventView,
    Health,
    NotReady,
    PaymentView,
    PendingChange,
    Quote,
    Readiness,
    ServiceMailView,
)
from worker.api.quote import quote
from worker.api.reads import ChangeRead, MailRead
from worker.api.tokens import Scope
from worker.bootstrap import Container

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
PathId = Annotated[str, Path(pattern=ID_PATTERN, description="1-64 of A-Z a-z 0-9 . _ : -")]

probes = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require(Scope.READ))])


@probes.get("/healthz", operation_id="healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health()


@probes.get(
    "/readyz",
    operation_id="readyz",
    response_model=Readiness,
    summary="Database reachable and migrated, broker and stream Redis reachable",
    responses={503: {"model": NotReady, "description": "Not ready: `not_ready`, with why."}},
)
def readyz(request: Request) -> Readiness | JSONResponse:
    checks = request.app.state.readiness.check()
    failing = {name: why for name, why in checks.items() if why != "ok"}
    if failing:
        detail = "; ".join(f"{name}: {why.rstrip('.')}" for name, why in failing.items())
        body = NotReady(error="not_ready", detail=f"Not ready: {detail}.", checks=checks)
        return JSONResponse(body.model_dump(), status_code=503)
    return Readiness(ready=True, checks=checks)


def _container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def _mail(request: Request, service_mail_id: str) -> tuple[MailRead, PlanTable]:
    container = _container(request)
    read = reads.service_mail(container.database, service_mail_id)
    if read is None:
        raise ApiError(404, "unknown_service_mail", f"No Service Mail {service_mail_id} is known.")
    plans = container.settings.plan_table
    if read.mail.plan not in plans:
        raise ApiError(
            503,
            "plan_not_configured",
            f"The plan {read.mail.plan} of this Service Mail is not in QUOTA_PLANS.",
        )
    return read, plans


@v1.get(
    "/service-mails/{service_mail_id}",
    operation_id="getServiceMail",
    response_model=ServiceMailView,
    summary="A Service Mail: A, B, its plan's bounds and the change awaiting payment",
    responses=responses(401, 404, 422, 503),
)
def service_mail(request: Request, service_mail_id: PathId) -> ServiceMailView:
    read, plans = _mail(request, service_mail_id)
    mail, plan = read.mail, plans[read.mail.plan]
    return ServiceMailView(
        service_mail_id=mail.id,
        account_id=mail.account_id,
        plan=mail.plan,
        address_limit=mail.address_limit,
        addresses_in_use=mail.addresses_in_use,
        ksuite_id=mail.ksuite_id,
        version=mail.version,
        plan_min_limit=plan.min,
        plan_max_limit=plan.max,
        pending_change=None if read.pending is None else PendingChange(**read.pending),
    )


@v1.get(
    "/service-mails/{service_mail_id}/quote",
    operation_id="quoteChange",
    response_model=Quote,
    summary="Whether a change of the limit would be accepted now (nothing is changed)",
    responses=responses(401, 404, 422, 503),
)
def service_mail_quote(
    request: Request,
    service_mail_id: PathId,
    account_id: Annotated[str, Query(pattern=ID_PATTERN, description="The ordering account.")],
    new_address_limit: Annotated[Limit, Query(description="The limit B wanted.")],
) -> Quote:
    read, plans = _mail(request, service_mail_id)
    return quote(read, account_id, new_address_limit, plans, request.app.state.now())


def _change_view(found: ChangeRead) -> ChangeView:
    c = found.change
    return ChangeView(
        **{name: c[name] for name in ChangeView.model_fields if name in c},
        payments=[
            PaymentView(**{k: p[k] for k in PaymentView.model_fields}) for p in found.payments
        ],
        events=[EventView(**e) for e in found.events],
    )


@v1.get(
    "/orders/{order_id}",
    operation_id="getOrder",
    response_model=ChangeView,
    summary="The change of an order, its payments and its events",
    responses=responses(401, 404, 422, 503),
)
def order(request: Request, order_id: PathId) -> ChangeView:
    found = reads.change(_container(request).database, "order_id", order_id)
    if found is None:
        raise ApiError(404, "unknown_order", f"No change request is known for order {order_id}.")
    return _change_view(found)


@v1.get(
    "/requests/{request_id}",
    operation_id="getRequest",
    response_model=ChangeView,
    summary="A change request, its payments and its events",
    responses=responses(401, 404, 422, 503),
)
def change_request(request: Request, request_id: PathId) -> ChangeView:
    found = reads.change(_container(request).database, "request_id", request_id)
    if found is None:
        raise ApiError(404, "unknown_request", f"No change request {request_id} is known.")
    return _change_view(found)

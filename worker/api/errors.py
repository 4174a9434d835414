"""Every error answers `{"error": code, "detail": sentence}` (CONTRACT.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from worker.adapters.db import transient
from worker.api.models import ErrorBody

_CODES = {404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def error_response(
    status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=error, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def unexpected(exc: Exception) -> JSONResponse:
    """A failure no handler expected: 503 if the database was away (worth a retry), else 500."""
    if transient(exc):
        return error_response(503, "unavailable", "The database cannot be reached now; retry.")
    return error_response(500, "internal_error", "The request failed; the service logged why.")


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries of the errors a call may answer."""
    meaning = {
        401: "No bearer token, or not one of QUOTA_API_TOKENS.",
        403: "The token's scope does not allow this call.",
        404: "Nothing is known by this id.",
        422: "A parameter is not valid (`invalid_request`).",
        503: "The database cannot be reached now (`unavailable`), or the Service Mail's plan "
        "is not in QUOTA_PLANS (`plan_not_configured`).",
    }
    return {s: {"model": ErrorBody, "description": meaning[s]} for s in statuses}


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) + "."


def install(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "invalid_request", _validation_detail(exc))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = "No such resource." if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, code, detail, exc.headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)

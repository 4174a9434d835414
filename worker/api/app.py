"""The FastAPI app: built from the composition root's Container, its routes in
`routes.py`, its errors in `errors.py`; every request logged with its caller's name."""

from __future__ import annotations

import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response

from worker.api import console, errors, routes
from worker.api.probes import ReadinessChecks
from worker.bootstrap import Container, utcnow

log = structlog.get_logger("worker.api")

API_VERSION = "1.0.0"
DESCRIPTION = """\
Ask quota-worker about a Service Mail: its addresses in use (A) and limit (B), whether a
change would be accepted now (a quote, run through the worker's own rules), and what
became of an order. Every `/v1` call needs `Authorization: Bearer <token>`; the messages
that change anything are the Celery messages of the AsyncAPI document (`asyncapi.yaml`).
"""


def _bare_app(
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="quota-worker",
        version=API_VERSION,
        description=DESCRIPTION,
        docs_url=None,  # no pages that load scripts from elsewhere; the document is served
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    errors.install(app)
    app.include_router(routes.probes)
    app.include_router(routes.v1)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document, from the routes and their pydantic models alone."""
    return _bare_app().openapi()


def create_app(container: Container, now: Callable[[], datetime] = utcnow) -> FastAPI:
    readiness = ReadinessChecks(container)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        readiness.close()

    app = _bare_app(lifespan)
    console.install(app)
    app.state.container = container
    app.state.tokens = container.settings.api_token_set
    app.state.now = now
    app.state.readiness = readiness

    @app.middleware("http")
    async def log_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # answered in the contract's shape, logged with its cause
            # The traceback as plain text: a renderer that shows frames' locals would show
            # the request's scope, and its Authorization header with it.
            log.error("api_failed", method=request.method, path=request.url.path,
                      error=f"{type(exc).__name__}: {exc}"[:2000],
                      traceback="".join(traceback.format_exception(exc)))  # fmt: skip
            response = errors.unexpected(exc)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        log.info(
            "api_request",
            method=request.method,
            path=request.url.path,  # never the query, nor any header
            status=response.status_code,
            token_name=getattr(request.state, "token_name", None),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response

    return app

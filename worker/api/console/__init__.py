"""The operators' web console at /console/: server-rendered pages (Jinja2, autoescaped), a
signed session cookie, CSRF tokens on every form, a strict Content-Security-Policy and no
script at all (the overview refreshes with a meta refresh)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from worker.api.console import actions, pages
from worker.api.console.render import ConsoleError, SignInRequired, error_page

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(ConsoleError, error_page)
    app.add_exception_handler(SignInRequired, error_page)

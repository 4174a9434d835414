"""`quota-worker api`: the HTTP API (uvicorn) on QUOTA_API_HOST:QUOTA_API_PORT."""

from __future__ import annotations

import logging
import signal

import click
import structlog

from worker.cli.base import build_container, main

log = structlog.get_logger("worker.api")


@main.command()
def api() -> None:
    """Serve the HTTP API: /healthz, /readyz, /openapi.json and /v1 (bearer tokens).

    Listens on QUOTA_API_HOST (default 127.0.0.1) and QUOTA_API_PORT (8080); the tokens come
    from QUOTA_API_TOKENS. Starts even if a dependency is away: /readyz says which. Behind
    a proxy, set FORWARDED_ALLOW_IPS to its address: its X-Forwarded-Proto is then believed.
    """
    import uvicorn

    from worker.api.app import create_app
    from worker.api.tokens import HOW_TO_SET
    from worker.entrypoints.lifeline import die_with_supervisor

    # Started by `dev` or `demo`: a SIGTERM when they die, however they die.
    die_with_supervisor()

    # Each /readyz reads the schema's revision: Alembic would log its dialect every time.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    container = build_container()
    settings = container.settings
    tokens = settings.api_token_set
    if tokens:
        log.info("api_tokens", names=tokens.names())
    else:
        log.warning("api_no_tokens", refused="every /v1 call", fix=HOW_TO_SET)
    log.info("api_listening", host=settings.api_host, port=settings.api_port)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # handler it found: this one ends the run, so a clean stop exits 0 (as `run` does),
    # and a signal that comes before uvicorn listens for them stops it all the same.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped)
    try:
        uvicorn.run(
            create_app(container),
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,  # uvicorn's lines go through our structlog set-up
            access_log=False,  # api_request is the access log, without query strings
            server_header=False,
            # Behind a TLS proxy the console's Secure cookie and Origin check need the
            # scheme it was asked over: X-Forwarded-Proto/-For are believed from the
            # addresses of uvicorn's FORWARDED_ALLOW_IPS (default 127.0.0.1,::1) only.
            proxy_headers=True,
        )
    except _Stop:
        pass
    finally:
        container.database.dispose()
    click.echo("api stopped", err=True)


class _Stop(Exception):
    """A SIGTERM or SIGINT, once uvicorn has let go of it (or before it listened)."""


def _stopped(_signum: int, _frame: object) -> None:
    raise _Stop

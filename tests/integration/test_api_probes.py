"""/healthz, /readyz and /openapi.json against real and unreachable dependencies."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.integration.api_client import READ_TOKEN, bearer
from worker.api.app import create_app, openapi_document
from worker.bootstrap import build
from worker.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


@contextmanager
def _client(settings: Settings, **changes: Any) -> Iterator[TestClient]:
    container = build(Settings(**{**settings.model_dump(), **changes}))  # a fresh one: no cache
    try:
        with TestClient(create_app(container)) as client:
            yield client
    finally:
        container.database.dispose()


def test_healthz_answers_ok(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_200_when_every_dependency_answers(api: TestClient) -> None:
    answer = api.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "ready": True,
        "checks": {"database": "ok", "broker": "ok", "redis": "ok"},
    }


def test_readyz_is_503_naming_an_unreachable_stream_redis(settings: Settings) -> None:
    url = SecretStr(f"redis://127.0.0.1:{_closed_port()}/0")
    with _client(settings, redis_url=url) as client:
        answer = client.get("/readyz")
    body = answer.json()
    assert answer.status_code == 503 and body["error"] == "not_ready"
    assert body["checks"]["redis"].startswith("unreachable:")
    assert (body["checks"]["database"], body["checks"]["broker"]) == ("ok", "ok")
    assert body["detail"].startswith("Not ready: redis: unreachable")


def test_readyz_is_503_naming_an_unreachable_broker(settings: Settings) -> None:
    url = SecretStr(f"redis://127.0.0.1:{_closed_port()}/0")
    with _client(settings, broker_url=url) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["broker"].startswith("unreachable:")


def test_readyz_is_503_with_the_fix_when_the_schema_is_not_migrated(
    settings: Settings, tmp_path: Path
) -> None:
    url = SecretStr(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with _client(settings, database_url=url) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["database"].startswith("the schema is at revision none")
    assert "quota-worker db upgrade" in answer.json()["detail"]


def test_the_served_document_is_the_generated_one(api: TestClient) -> None:
    assert api.get("/openapi.json").json() == openapi_document()


def test_with_no_token_configured_every_v1_call_is_401_saying_how(settings: Settings) -> None:
    with _client(settings, api_tokens=SecretStr("")) as client:
        answer = client.get("/v1/service-mails/sm-1", headers=bearer(READ_TOKEN))
    assert answer.status_code == 401 and "QUOTA_API_TOKENS" in answer.json()["detail"]


def test_readyz_never_shows_a_password_of_the_configured_urls(settings: Settings) -> None:
    url = SecretStr(f"redis://quota:hunter2-secret@127.0.0.1:{_closed_port()}/0")
    with _client(settings, redis_url=url, broker_url=url) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503 and "hunter2-secret" not in answer.text


def test_a_v1_call_while_the_database_is_away_is_503_unavailable(settings: Settings) -> None:
    url = SecretStr(f"postgresql+psycopg://quota@127.0.0.1:{_closed_port()}/quota")
    with _client(settings, database_url=url) as client:
        answer = client.get("/v1/orders/ord-1", headers=bearer(READ_TOKEN))
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "unavailable",
        "detail": "The database cannot be reached now; retry.",
    }

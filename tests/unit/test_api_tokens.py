"""QUOTA_API_TOKENS: its form, its refusals (never repeating a token), and the scopes."""

from __future__ import annotations

import os
import re

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from worker.api import errors
from worker.api.auth import require
from worker.api.tokens import InvalidTokens, Scope, TokenSet, parse_tokens
from worker.settings import Settings

READ = "r" * 32
OPERATE = "o" * 32


def test_entries_are_name_scope_token_separated_by_commas() -> None:
    tokens = parse_tokens(f"checkout:read:{READ}, oncall:operate:{OPERATE}")
    assert [(t.name, t.scope) for t in tokens.tokens] == [
        ("checkout", Scope.READ),
        ("oncall", Scope.OPERATE),
    ]


def test_a_token_may_hold_colons() -> None:
    token = "a:b:c:" + "x" * 20
    assert parse_tokens(f"ops:operate:{token}").find(token) is not None


def test_blank_means_no_token_at_all() -> None:
    assert not parse_tokens("") and not parse_tokens("  ")


def test_a_presented_token_is_found_by_its_value_only() -> None:
    tokens = parse_tokens(f"checkout:read:{READ},oncall:operate:{OPERATE}")
    found = tokens.find(OPERATE)
    assert found is not None and found.name == "oncall"
    assert tokens.find(READ[:-1]) is None and tokens.find("") is None


def test_the_token_itself_is_not_kept_nor_shown() -> None:
    tokens = parse_tokens(f"checkout:read:{READ}")
    assert READ not in repr(tokens) and READ not in repr(tokens.tokens[0].__dict__)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"checkout:{READ}", "entry 1 is not name:scope:token"),
        (f"checkout:admin:{READ}", "entry 1 (checkout): the scope must be read or operate"),
        ("checkout:read:short", "at least 16 characters"),
        (f"check out:read:{READ}", "entry 1: the name must be"),
        (f"a:read:{READ},a:operate:{OPERATE}", "the name 'a' is given to more than one token"),
        (f"a:read:{READ},b:operate:{READ}", "the same token is given under two names"),
        (f"a:read:{READ},", "entry 2 is not name:scope:token"),
    ],
)
def test_a_bad_value_is_refused_with_the_entry_named(value: str, message: str) -> None:
    with pytest.raises(InvalidTokens, match=re.escape(message)) as refused:
        parse_tokens(value)
    assert READ not in str(refused.value) and OPERATE not in str(refused.value)


def test_settings_refuse_a_bad_value_naming_the_variable_and_not_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUOTA_API_TOKENS", f"checkout:reed:{READ}")
    with pytest.raises(ValidationError, match="QUOTA_API_TOKENS: entry 1") as refused:
        Settings()
    assert READ not in str(refused.value)


def test_settings_default_to_localhost_8080_and_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("QUOTA_")]:
        monkeypatch.delenv(name)
    settings = Settings()
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8080)
    assert not settings.api_token_set


def test_operate_allows_everything_read_allows_only_reading() -> None:
    assert Scope.OPERATE.allows(Scope.READ) and Scope.OPERATE.allows(Scope.OPERATE)
    assert Scope.READ.allows(Scope.READ) and not Scope.READ.allows(Scope.OPERATE)


def _client(tokens: TokenSet) -> TestClient:
    """An app with one read call and one action, guarded as /v1 is."""
    app = FastAPI()
    errors.install(app)
    app.state.tokens = tokens

    @app.get("/look", dependencies=[Depends(require(Scope.READ))])
    def look() -> dict[str, str]:
        return {"ok": "read"}

    @app.post("/act", dependencies=[Depends(require(Scope.OPERATE))])
    def act() -> dict[str, str]:
        return {"ok": "acted"}

    return TestClient(app)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_read_token_reads_but_may_not_act() -> None:
    client = _client(parse_tokens(f"checkout:read:{READ}"))
    assert client.get("/look", headers=_bearer(READ)).status_code == 200
    refused = client.post("/act", headers=_bearer(READ))
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"


def test_an_operate_token_reads_and_acts() -> None:
    client = _client(parse_tokens(f"oncall:operate:{OPERATE}"))
    assert client.get("/look", headers=_bearer(OPERATE)).status_code == 200
    assert client.post("/act", headers=_bearer(OPERATE)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, _bearer("x" * 32), {"Authorization": f"Basic {READ}"}, {"Authorization": READ}],
    ids=["none", "unknown", "basic", "no-scheme"],
)
def test_no_or_an_unknown_token_is_401_with_a_bearer_challenge(headers: dict[str, str]) -> None:
    answer = _client(parse_tokens(f"checkout:read:{READ}")).get("/look", headers=headers)
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_with_no_token_configured_every_call_is_refused_and_says_why() -> None:
    answer = _client(TokenSet()).get("/look", headers=_bearer(READ))
    assert answer.status_code == 401 and "QUOTA_API_TOKENS" in answer.json()["detail"]

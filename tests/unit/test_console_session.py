"""The console's session cookie and CSRF token (worker/api/console/session.py), no I/O."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

from worker.api.console import session as sessions
from worker.api.tokens import parse_tokens

TOKENS = parse_tokens(f"oncall:operate:{'o' * 32},viewer:read:{'r' * 32}")
ONCALL = TOKENS.tokens[0]
NOW = 1_800_000_000.0
ROOT = Path(__file__).resolve().parents[2]


def test_a_session_cookie_names_the_token_and_never_holds_it() -> None:
    value = sessions.issue(ONCALL, NOW).cookie_value()
    assert value.startswith("oncall|") and "o" * 16 not in value


def test_a_session_verifies_until_it_expires() -> None:
    value = sessions.issue(ONCALL, NOW).cookie_value()
    assert sessions.verify(value, TOKENS, NOW + 60) is not None
    assert sessions.verify(value, TOKENS, NOW + sessions.SESSION_SECONDS) is None


def test_a_session_under_another_name_or_a_later_expiry_does_not_verify() -> None:
    _name, expires, nonce, mac = sessions.issue(ONCALL, NOW).cookie_value().split("|")
    assert sessions.verify(f"viewer|{expires}|{nonce}|{mac}", TOKENS, NOW) is None
    assert sessions.verify(f"oncall|{int(expires) + 1}|{nonce}|{mac}", TOKENS, NOW) is None
    assert sessions.verify("garbage", TOKENS, NOW) is None


def test_rotating_a_token_ends_its_sessions() -> None:
    value = sessions.issue(ONCALL, NOW).cookie_value()
    rotated = parse_tokens(f"oncall:operate:{'n' * 32}")
    assert sessions.verify(value, rotated, NOW) is None


def test_the_csrf_token_is_per_session_and_checked_exactly() -> None:
    one, two = sessions.issue(ONCALL, NOW), sessions.issue(ONCALL, NOW)
    assert one.csrf != two.csrf and one.csrf_matches(one.csrf)
    assert not one.csrf_matches(two.csrf) and not one.csrf_matches(None)
    assert not one.csrf_matches("")


def test_only_an_operate_token_may_act() -> None:
    assert sessions.issue(ONCALL, NOW).may_act
    assert not sessions.issue(TOKENS.tokens[1], NOW).may_act


def test_every_template_and_static_file_of_the_console_ships_in_the_wheel() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["worker"]
    console = ROOT / "worker" / "api" / "console"
    files = [p for d in ("templates", "static") for p in (console / d).iterdir()]
    shipped = [
        f
        for f in files
        if any(fnmatch(f.relative_to(ROOT / "worker").as_posix(), g) for g in globs)
    ]
    assert files and shipped == files

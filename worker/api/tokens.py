"""QUOTA_API_TOKENS: `name:scope:token` entries, and finding the one a caller presents.

Standard library only: the settings parse it at start (a bad value is a clear error that
never repeats a token), and the API compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import StrEnum

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_TOKEN_LENGTH = 16
HOW_TO_SET = (
    "set QUOTA_API_TOKENS to comma-separated name:scope:token entries, scope read or "
    "operate, e.g. checkout:read:$(openssl rand -hex 32)"
)


class InvalidTokens(ValueError):
    """QUOTA_API_TOKENS cannot be used; the message names the entry, never its token."""


class Scope(StrEnum):
    READ = "read"
    OPERATE = "operate"

    def allows(self, needed: Scope) -> bool:
        """`operate` may do everything `read` may."""
        return self is Scope.OPERATE or needed is Scope.READ


@dataclass(frozen=True)
class ApiToken:
    name: str
    scope: Scope
    digest: bytes = field(repr=False)  # SHA-256 of the token: the token itself is not kept


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class TokenSet:
    tokens: tuple[ApiToken, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def names(self) -> list[str]:
        return [t.name for t in self.tokens]

    def find(self, presented: str) -> ApiToken | None:
        """The entry whose token is `presented`. Every entry is compared, each in constant
        time over equal-length digests, so the time taken tells nothing of any token."""
        digest = _digest(presented)
        found = None
        for token in self.tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token
        return found


def parse_tokens(value: str) -> TokenSet:
    """The entries of QUOTA_API_TOKENS (blank: none, so every /v1 call is refused)."""
    if not value.strip():
        return TokenSet()
    tokens: list[ApiToken] = []
    for number, entry in enumerate(value.split(","), start=1):
        tokens.append(_parse_entry(number, entry.strip()))
    names = [t.name for t in tokens]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise InvalidTokens(f"the name {doubled[0]!r} is given to more than one token")
    if len({t.digest for t in tokens}) < len(tokens):
        raise InvalidTokens("the same token is given under two names")
    return TokenSet(tuple(tokens))


def _parse_entry(number: int, entry: str) -> ApiToken:
    where = f"entry {number}"
    parts = entry.split(":", 2)
    if len(parts) != 3:
        raise InvalidTokens(f"{where} is not name:scope:token ({HOW_TO_SET})")
    name, scope, token = parts
    if not NAME.match(name):
        raise InvalidTokens(f"{where}: the name must be 1-64 characters of A-Z a-z 0-9 . _ -")
    where = f"entry {number} ({name})"
    if scope not in Scope.__members__.values():
        # Not echoed: a misplaced colon could make part of a token look like the scope.
        raise InvalidTokens(f"{where}: the scope must be read or operate")
    if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
        raise InvalidTokens(
            f"{where}: the token must be at least {MIN_TOKEN_LENGTH} characters, without "
            "surrounding spaces (openssl rand -hex 32 makes a good one)"
        )
    return ApiToken(name, Scope(scope), _digest(token))

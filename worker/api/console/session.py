"""The console's session cookie and the CSRF token every form carries.

Why a signed cookie and not a session table: the API stores nothing of its own (it reads
the database and writes only through the operator actions), so a session must survive a
restart and hold on any replica. The cookie is ``name|expiry|nonce|mac``: the token's
*name*, never the token; ``mac`` is HMAC-SHA256 of the rest under a key derived from the
digest of that name's token in QUOTA_API_TOKENS. Hence:

- only the server, or someone holding the token (who could sign in anyway), can make one;
- rotating or removing a token ends its sessions at once, and a changed scope applies at
  once: the scope is read from the settings at every request, never from the cookie;
- it ends after SESSION_SECONDS whatever the browser keeps (Max-Age is only a hint).

Sign-out deletes the cookie; a copy taken before stays valid until it expires or its token
is rotated: the price of keeping no state, bounded by the 8 hours.

CSRF: the per-session token is an HMAC of the session's nonce under the same key, sent as a
hidden field with every POST and compared in constant time. SameSite=Strict and the Origin
check (`same_origin`) are two more layers. The sign-in form, before any session, carries a
double-submit token: a random value both in a short-lived cookie and in the form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from worker.api.tokens import ApiToken, Scope, TokenSet

COOKIE = "quota_console"
SIGN_IN_COOKIE = "quota_console_sign_in"
PATH = "/console"
SESSION_SECONDS = 8 * 3600
SIGN_IN_SECONDS = 15 * 60


def _key(token: ApiToken) -> bytes:
    return hmac.new(token.digest, b"quota-worker console session v1", hashlib.sha256).digest()


def _mac(token: ApiToken, message: str) -> str:
    return hmac.new(_key(token), message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Session:
    token: ApiToken
    expires: int
    nonce: str

    @property
    def name(self) -> str:
        return self.token.name

    @property
    def may_act(self) -> bool:
        return self.token.scope.allows(Scope.OPERATE)

    @property
    def csrf(self) -> str:
        return _mac(self.token, f"csrf|{self.nonce}")

    def cookie_value(self) -> str:
        payload = f"{self.token.name}|{self.expires}|{self.nonce}"
        return f"{payload}|{_mac(self.token, payload)}"

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


def issue(token: ApiToken, now: float) -> Session:
    return Session(token, int(now) + SESSION_SECONDS, secrets.token_urlsafe(18))


def verify(value: str | None, tokens: TokenSet, now: float) -> Session | None:
    """The session a cookie stands for, if its signature holds, it has not expired, and its
    token is still configured."""
    if not value or len(value) > 300:
        return None
    parts = value.split("|")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    name, expires, nonce, mac = parts
    token = next((t for t in tokens.tokens if t.name == name), None)
    if token is None:
        return None
    expected = _mac(token, f"{name}|{expires}|{nonce}")
    if not hmac.compare_digest(mac.encode(), expected.encode()) or int(expires) <= now:
        return None
    return Session(token, int(expires), nonce)


def _secure(request: Request) -> bool:
    """Asked over https: directly, or through a proxy uvicorn trusts (FORWARDED_ALLOW_IPS),
    whose X-Forwarded-Proto its ProxyHeadersMiddleware has made the request's scheme."""
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.cookie_value(),
        max_age=SESSION_SECONDS,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=PATH)


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=PATH, httponly=True, samesite="strict", secure=_secure(request)
    )


def sign_in_token(request: Request) -> str:
    """The sign-in form's double-submit token: the one its cookie holds, or a new one."""
    value = request.cookies.get(SIGN_IN_COOKIE)
    return value if value and len(value) == 32 and value.isalnum() else secrets.token_hex(16)


def set_sign_in_token(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE,
        value,
        max_age=SIGN_IN_SECONDS,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def sign_in_token_matches(request: Request, presented: str | None) -> bool:
    expected = request.cookies.get(SIGN_IN_COOKIE)
    if not expected or presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def same_origin(request: Request) -> bool:
    """A POST's Origin, where the browser sent one, is this server's own."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # older browsers and tools: the CSRF token alone decides
    return origin == f"{request.url.scheme}://{request.url.netloc}"

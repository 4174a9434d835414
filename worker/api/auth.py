"""Bearer tokens of QUOTA_API_TOKENS and their scopes: who may call /v1, and as whom."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from worker.api.errors import ApiError
from worker.api.tokens import ApiToken, Scope, TokenSet

log = structlog.get_logger("worker.api")

# auto_error off: a missing or malformed header answers in the contract's error shape.
bearer = HTTPBearer(auto_error=False, description="A token of QUOTA_API_TOKENS.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def authenticate(tokens: TokenSet, credentials: HTTPAuthorizationCredentials | None) -> ApiToken:
    """The caller's token entry, or a 401 (the token itself is never logged or echoed)."""
    if not tokens:
        raise ApiError(
            401,
            "unauthorized",
            "No API token is configured on this server (QUOTA_API_TOKENS), so "
            "every /v1 call is refused.",
            _CHALLENGE,
        )
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "A bearer token is required: Authorization: Bearer <token>.",
            _CHALLENGE,
        )
    token = tokens.find(credentials.credentials)
    if token is None:
        raise ApiError(401, "unauthorized", "The bearer token is not known.", _CHALLENGE)
    return token


def authorize(token: ApiToken, needed: Scope) -> None:
    if not token.scope.allows(needed):
        raise ApiError(
            403,
            "forbidden",
            f"The token {token.name} has scope {token.scope}; this call needs {needed}.",
        )


def require(needed: Scope) -> Callable[..., ApiToken]:
    """A dependency: the caller's token, which must allow `needed`."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> ApiToken:
        tokens: TokenSet = request.app.state.tokens
        try:
            token = authenticate(tokens, credentials)
        except ApiError:
            request.state.token_name = None
            raise
        request.state.token_name = token.name  # the request log names the caller
        authorize(token, needed)
        return token

    return dependency

"""Signing in to the console as a browser does: the form's CSRF field, then the token."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx2 as httpx
from fastapi.testclient import TestClient

from tests.integration.api_client import TOKENS

HOSTILE_BODY = (
    '{"args": [], "kwargs": {"note": "<script>window.__pwned = 1</script>'
    '\\"><img src=x onerror=\\"window.__pwned = 2\\">", '
    '"terminal": "\x1b[2J\u202e"}}'
)
__all__ = ["HOSTILE_BODY", "TOKENS", "csrf_of", "sign_in", "tags_in"]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> httpx.Response:
    csrf = csrf_of(client.get("/console/sign-in").text)
    return client.post(
        "/console/sign-in", data={"csrf": csrf, "token": token}, follow_redirects=False
    )


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_in(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every element the page holds, as a browser's parser would build it."""
    parser = _Tags()
    parser.feed(html)
    return parser.tags

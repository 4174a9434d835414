"""The API's tokens in the integration suite (its settings carry them; see conftest.py)."""

from __future__ import annotations

READ_TOKEN = "checkout-token-" + "r" * 24
OPERATE_TOKEN = "oncall-token-" + "o" * 24
TOKENS = f"checkout:read:{READ_TOKEN},oncall:operate:{OPERATE_TOKEN}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

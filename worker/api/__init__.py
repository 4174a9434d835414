"""`quota-worker api`: the HTTP API the checkout and operators ask (CONTRACT.md, "Asking
the service"). `tokens.py` imports nothing of FastAPI, so the settings can check
QUOTA_API_TOKENS without it."""

"""How the operator commands print: stored data escaped and never markup, JSON for scripts."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from worker.ops.safe_text import printable

# Piped into a file or grep, rows must not be cut at rich's default 80 columns.
# Stored data reaches rich only as Text (never parsed as markup); emoji codes
# such as :smile: are never expanded either.
console = Console(emoji=False) if sys.stdout.isatty() else Console(width=200, emoji=False)


def cell(value: object) -> Text:
    """A value from stored data (or the broker) as rich shows it: escaped, never markup."""
    return Text(printable(value))


def echo_json(data: Any) -> None:
    # ensure_ascii: every control character (and all non-ASCII) is a \uXXXX escape.
    click.echo(json.dumps(data, default=_default, indent=2, ensure_ascii=True))


def _default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)

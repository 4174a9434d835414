"""Stored data made safe to print on an operator's terminal.

Message ids, task names, bodies and reasons come from producers and operators:
printed raw, a control character in one of them reaches the terminal as a
command (OSC 52 writes the clipboard, ``ESC [2J`` and ``ESC c`` clear the
screen, a C1 ``CSI`` does the same in one byte) and a bidi override reorders
what the operator reads. `printable` shows every such character as a visible
escape instead, on one line, and leaves everything else (``é``, ``ü``, ``→``)
as it is.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]

# Characters a terminal or a text renderer acts on rather than shows, beyond
# the "Cc" controls: bidi embeddings, overrides, isolates and marks, and the
# Unicode line and paragraph separators (a field stays on one line).
_BIDI_AND_SEPARATORS = frozenset(
    "\u061c"  # ARABIC LETTER MARK
    "\u200e\u200f"  # LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # LRE, RLE, PDF, LRO, RLO
    "\u2066\u2067\u2068\u2069"  # LRI, RLI, FSI, PDI
    "\u2028\u2029"  # LINE / PARAGRAPH SEPARATOR
)

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(char: str) -> bool:
    # Cc: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F).
    # Cs: a lone surrogate, which could not even be encoded to the terminal.
    return char in _BIDI_AND_SEPARATORS or unicodedata.category(char) in ("Cc", "Cs")


def _escape(char: str) -> str:
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(value: object) -> str:
    """`value` as text that prints as itself, on one line, whatever it holds.

    Control characters (C0 including newline, carriage return and tab, DEL, C1),
    bidi controls, line and paragraph separators and lone surrogates become
    visible escapes (``\\x1b``, ``\\n``, ``\\x9b``, ``\\u202e``). Everything
    else is kept, non-ASCII letters and backslashes included: a backslash is
    not doubled, so text that already holds escapes (an error quoting a repr)
    reads as before, and escaping twice changes nothing.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to do
    return "".join(_escape(char) if _unsafe(char) else char for char in text)

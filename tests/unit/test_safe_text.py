"""Stored data printed to an operator's terminal: controls are shown, never obeyed."""

from __future__ import annotations

import pytest

from worker.ops.safe_text import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # OSC 52: writes the clipboard
        ("\x1b[2J", "\\x1b[2J"),  # clears the screen
        ("\x1bc", "\\x1bc"),  # resets the terminal
        ("\x9b2J", "\\x9b2J"),  # C1 CSI: the same in one character
        ("\x00\x01\x08\x7f", "\\x00\\x01\\x08\\x7f"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),  # a field stays on one line
        ("\x80\x85\x9f", "\\x80\\x85\\x9f"),
        ("txt.\u202egpj", "txt.\\u202egpj"),  # right-to-left override
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        ("one\u2028two\u2029", "one\\u2028two\\u2029"),
        ("\ud800", "\\ud800"),  # a lone surrogate could not even be encoded
    ],
)
def test_controls_are_shown_as_visible_escapes(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_every_c0_del_and_c1_control_is_escaped() -> None:
    controls = "".join(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0)]))
    shown = printable(controls)
    assert shown.isascii() and shown.isprintable()
    assert all(f"\\x{code:02x}" in shown for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]
               if chr(code) not in "\n\r\t")  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "quota.request_change",
        "ord-2026-11-24:42",
        "Zürich, café, Ærø, Łódź, 東京, Ελλάδα",
        "10 → 20 addresses · 15.00 CHF",
        "emoji 🎉 and a family 👨\u200d👩\u200d👧",  # joiners are not controls
        "[red]markup stays literal here[/red] :smile:",
        r"a repr quoting an escape: '\x1b' \\ C:\path",  # backslashes are not doubled
        "",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert printable(text) == text


def test_escaping_twice_changes_nothing() -> None:
    once = printable("\x1b[2J\x9b\u202e\n")
    assert printable(once) == once


def test_any_value_is_shown_as_its_text() -> None:
    assert printable(None) == "None"
    assert printable(42) == "42"
    assert printable(ValueError("bad \x1b[2J task")) == "bad \\x1b[2J task"

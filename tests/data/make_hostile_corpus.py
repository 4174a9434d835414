"""Writes tests/data/hostile_messages.json: the corpus of bad inbound messages.

Run it again after a contract change (`.venv/bin/python -m tests.data.make_hostile_corpus`);
the corpus is data, kept in the repository, so a failing case can be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.payloads import VALID

# The ids become unique per case in the test (REQ, ORD and PAY are placeholders).
PLACEHOLDERS = {"req-1": "REQ", "ord-1": "ORD", "pay-1": "PAY"}
GOOD: dict[str, dict[str, Any]] = {
    task: {k: PLACEHOLDERS.get(v, v) if isinstance(v, str) else v for k, v in payload.items()}
    for task, payload in VALID.items()
}

INTS = {
    "negative": -1, "float": 20.0, "fraction": 20.5, "string": "20", "bool": True, "null": None,
    "huge": 10**30, "2^31": 2**31, "list": [20], "object": {"n": 20},
}  # fmt: skip
IDS = {
    "empty": "", "too-long": "x" * 65, "space": "a b", "non-ascii": "zürich", "emoji": "id-🙂",
    "newline": "abc\n", "nul": "a\x00b", "sql": "1'; DROP TABLE quota_changes;--",
    "path": "../../etc/passwd", "int": 42, "null": None, "html": "<script>x</script>",
}  # fmt: skip
TIMES = {
    "no-offset": "2026-11-24T10:00:00", "date-only": "2026-11-24", "word": "tomorrow",
    "epoch": 1732442400, "empty": "", "bad-month": "2026-13-01T00:00:00Z", "huge": "9" * 500,
    "year-1-east": "0001-01-01T00:00+14:00", "year-9999-west": "9999-12-31T23:59-14:00",
    "before-2000": "1999-12-31T23:59:59Z", "after-2200": "2200-01-01T00:00:01Z",
}  # fmt: skip
CURRENCIES = {"lower": "chf", "four": "CHFF", "digits": "123", "empty": "", "int": 756}
EMAILS = {
    "no-at": "nobody", "two-ats": "a@@b.ch", "space": "a b@c.ch", "too-long": "a" * 250 + "@b.ch",
    "control": "a\x07@b.ch", "no-domain": "a@", "int": 7,
    "sql": "a@b.ch'; DROP TABLE addresses;--",
}  # fmt: skip

ADDRESS_LISTS = {
    "not-a-list": "a@b.ch", "object": {"a@b.ch": 1}, "null": None,
    "bad-entry": ["a@b.ch", "nobody"], "too-long-entry": ["a" * 250 + "@b.ch"],
    "int-entry": [7], "null-entry": [None],
}  # fmt: skip


def cases() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(name: str, task: str, kwargs: Any, **extra: Any) -> None:
        out.append({"name": name, "task": task, "kwargs": kwargs, **extra})

    for task, good in GOOD.items():
        add(f"{task}: unknown field", task, {**good, "admin": True})
        add(f"{task}: schema_version 2", task, {**good, "schema_version": 2})
        add(f"{task}: schema_version true", task, {**good, "schema_version": True})
        add(f"{task}: empty payload", task, {})
        add(f"{task}: positional args", task, {}, args=list(good.values()))
        # Expanded by the test into a 1 MB field: kept small in the file.
        add(f"{task}: oversized body", task, good, oversize=1_000_000)
        for field in good:
            if field == "schema_version" or good[field] is None:
                continue
            add(f"{task}: missing {field}", task, {k: v for k, v in good.items() if k != field})
            value = good[field]
            if isinstance(value, int):
                for label, bad in INTS.items():
                    if label == "2^31" and field.startswith("amount"):
                        continue  # money is 64-bit: 2^31 minor units is a valid amount
                    add(f"{task}: {field} {label}", task, {**good, field: bad})
            elif field.endswith("_at"):
                for label, bad in TIMES.items():
                    add(f"{task}: {field} {label}", task, {**good, field: bad})
            elif field == "currency":
                for label, bad in CURRENCIES.items():
                    add(f"{task}: currency {label}", task, {**good, field: bad})
            elif field == "address":
                for label, bad in EMAILS.items():
                    add(f"{task}: address {label}", task, {**good, field: bad})
            elif field == "addresses":
                for label, bad in ADDRESS_LISTS.items():
                    add(f"{task}: addresses {label}", task, {**good, field: bad})
            elif field == "reason":
                add(f"{task}: reason 201 chars", task, {**good, field: "x" * 201})
            else:
                for label, bad in IDS.items():
                    add(f"{task}: {field} {label}", task, {**good, field: bad})
    for serializer in ("pickle", "yaml", "msgpack"):
        add(f"content type {serializer}", "quota.request_change", GOOD["quota.request_change"],
            content_type=serializer)  # fmt: skip
    add("unknown task", "quota.apply_discount", {"schema_version": 1})
    return out


if __name__ == "__main__":
    corpus = cases()
    target = Path(__file__).with_name("hostile_messages.json")
    target.write_text(json.dumps(corpus, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(corpus)} cases -> {target}")

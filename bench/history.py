"""A database that already holds a long history, seeded in bulk on the server (issue 19's
history-size row; issue 15's prune pair).

`seed_history` writes N past changes in end states on the bench's own Service Mails, with
what the worker would have written for each: its transitions, payments, limit history,
outbox rows (published) and processed message ids, in `INSERT … SELECT` statements over
`generate_series` (PostgreSQL) or a recursive CTE (SQLite), so a million changes take
about a minute, not an hour. Per Service Mail, the changes come in rounds of four:

- applied raise 10 → 15, paid (a used payment);
- applied decrease 15 → 10 (no payment);
- rejected `below_plan_minimum` (10 → 3);
- alternately expired (awaiting payment past its deadline) and cancelled with its late
  payment refunded (`change_cancelled`, and a `mail.quota.refund.required` event).

So each Service Mail ends where the workload expects it (limit 10) at the version its
applied changes reached. The changes are spread evenly from `newest_days + span_days`
days ago to `newest_days` days ago: past every deadline, so the sweep picks none, and
younger than the default 30-day retentions, so `quota-worker run`'s pruner removes none
of them during a run unless it is given shorter retentions (the prune pair does that).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from bench.workload import START_LIMIT

TAG = "hist"  # the seeded changes' ids: req-hist-N, ord-hist-N, pay-hist-N
ROUND = 4  # changes per Service Mail per round (above)
TABLES = ("quota_changes", "change_transitions", "payments", "limit_history", "outbox",
          "processed_messages")  # fmt: skip

# Per kind p (position in the round) and r (which round, for p = 3), offsets in seconds
# from the request: the rows a real change of that kind leaves.
_TRANSITIONS = [  # p, r, seq, from, to, reason, at
    (0, -1, 0, "received", "awaiting_payment", None, 1),
    (0, -1, 1, "awaiting_payment", "applied", None, 61),
    (1, -1, 0, "received", "applied", None, 1),
    (2, -1, 0, "received", "rejected", "below_plan_minimum", 1),
    (3, -1, 0, "received", "awaiting_payment", None, 1),
    (3, 0, 1, "awaiting_payment", "expired", None, 86_401),
    (3, 1, 1, "awaiting_payment", "cancelled", "order cancelled by the customer", 3_601),
]
_EVENTS = [  # p, r, seq, type, at
    (0, -1, 0, "mail.quota.change.accepted", 1),
    (0, -1, 1, "mail.quota.changed", 61),
    (1, -1, 0, "mail.quota.changed", 1),
    (2, -1, 0, "mail.quota.change.rejected", 1),
    (3, -1, 0, "mail.quota.change.accepted", 1),
    (3, 0, 1, "mail.quota.change.expired", 86_401),
    (3, 1, 1, "mail.quota.change.cancelled", 3_601),
    (3, 1, 2, "mail.quota.refund.required", 3_700),
]
_MESSAGES = [  # p, r, seq, task, outcome, at
    (0, -1, 0, "quota.request_change", "awaiting_payment", 1),
    (0, -1, 1, "quota.payment_confirmed", "applied", 61),
    (1, -1, 0, "quota.request_change", "applied", 1),
    (2, -1, 0, "quota.request_change", "rejected:below_plan_minimum", 1),
    (3, -1, 0, "quota.request_change", "awaiting_payment", 1),
    (3, 1, 1, "quota.order_cancelled", "cancelled", 3_601),
    (3, 1, 2, "quota.payment_confirmed", "refund:change_cancelled", 3_700),
]


def _lit(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        assert "'" not in value
        return f"'{value}'"
    return str(value)


def _kinds(rows: list[tuple[Any, ...]], names: tuple[str, ...]) -> str:
    """A small constant table, as UNION ALL (SQLite names no VALUES columns)."""
    selects = [
        "SELECT " + ", ".join(f"{_lit(v)} AS {n}" for v, n in zip(row, names, strict=True))
        for row in rows
    ]
    return "(" + " UNION ALL ".join(selects) + ")"


class _Sql:
    """The dialect's pieces: the numbers 0..n-1, and a timestamp `seconds` after t0."""

    def __init__(self, postgres: bool, n: int, mails: int, t0: int, span: int) -> None:
        self.postgres, self.t0 = postgres, t0
        if postgres:
            self.with_, numbers = "", f"generate_series(0::bigint, {n - 1}) AS g(i)"
        else:
            self.with_ = (f"WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g "
                          f"WHERE i < {n - 1}) ")  # fmt: skip
            numbers = "g"

        # c: each change's number i, Service Mail m, place k among m's changes, kind p,
        # round parity r, and seconds s from t0 to its request.
        # (`mod`, not `%`: psycopg would take `%` for a placeholder.)
        def mod(a: object, b: object) -> str:
            return f"mod({a}, {b})" if postgres else f"({a} % {b})"

        self.changes = (
            f"(SELECT i, {mod('i', mails)} AS m, i / {mails} AS k, "
            f"{mod(f'i / {mails}', ROUND)} AS p, {mod(f'i / {mails} / {ROUND}', 2)} AS r, "
            f"(i * {span}) / {n} AS s FROM {numbers}) AS c"
        )

    def ts(self, seconds: str) -> str:
        if self.postgres:
            return f"to_timestamp({self.t0} + {seconds})"
        # SQLAlchemy's SQLite DATETIME text, six fractional digits.
        return f"(strftime('%Y-%m-%d %H:%M:%S', {self.t0} + {seconds}, 'unixepoch') || '.000000')"

    def iso(self, seconds: str) -> str:
        if self.postgres:
            return (f"to_char(to_timestamp({self.t0} + {seconds}) AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")  # fmt: skip
        return f"strftime('%Y-%m-%dT%H:%M:%SZ', {self.t0} + {seconds}, 'unixepoch')"

    def event_id(self) -> str:
        if self.postgres:
            return ("lpad(to_hex(c.i), 8, '0') || '-' || lpad(to_hex(e.seq), 4, '0') "
                    "|| '-4000-8000-000000000000'")  # fmt: skip
        return "printf('%08x-%04x-4000-8000-000000000000', c.i, e.seq)"


def _statements(q: _Sql, mail_tag: str) -> dict[str, str]:
    mail, order = f"'sm-{mail_tag}-' || c.m", f"'ord-{TAG}-' || c.i"
    request, payment = f"'req-{TAG}-' || c.i", f"'pay-{TAG}-' || c.i"
    raise_ = "(c.p = 0 OR c.p = 3)"
    join = "JOIN {kinds} AS e ON e.p = c.p AND (e.r = -1 OR e.r = c.r)"
    body = (
        "'{\"specversion\":\"1.0\",\"id\":\"' || " + q.event_id() + " || '\",\"source\":"
        "\"quota-worker\",\"type\":\"' || e.type || '\",\"subject\":\"' || " + mail + " || "
        "'\",\"time\":\"' || " + q.iso("c.s + e.at") + " || '\",\"datacontenttype\":"
        "\"application/json\",\"data\":{\"request_id\":\"' || " + request + " || "
        "'\",\"order_id\":\"' || " + order + " || '\",\"service_mail_id\":\"' || " + mail
        + " || '\",\"seeded_history\":true}}'"
    )  # fmt: skip
    return {
        "quota_changes": (
            "INSERT INTO quota_changes (request_id, order_id, account_id, service_mail_id, "
            "expected_address_limit, new_address_limit, amount_due, currency, requested_at, "
            "state, reason, detail, expires_at, payment_id, created_at, updated_at) "
            f"{q.with_}SELECT {request}, {order}, 'acc-{mail_tag}-' || c.m, {mail}, "
            f"CASE WHEN c.p = 1 THEN {START_LIMIT + 5} ELSE {START_LIMIT} END, "
            f"CASE c.p WHEN 1 THEN {START_LIMIT} WHEN 2 THEN 3 ELSE {START_LIMIT + 5} END, "
            f"CASE WHEN {raise_} THEN 500 ELSE 0 END, 'CHF', {q.ts('c.s')}, "
            "CASE c.p WHEN 0 THEN 'applied' WHEN 1 THEN 'applied' WHEN 2 THEN 'rejected' "
            "ELSE CASE c.r WHEN 0 THEN 'expired' ELSE 'cancelled' END END, "
            "CASE WHEN c.p = 2 THEN 'below_plan_minimum' WHEN c.p = 3 AND c.r = 1 "
            "THEN 'order cancelled by the customer' END, "
            "CASE WHEN c.p = 2 THEN 'premium allows 5 to 500 addresses' END, "
            f"CASE WHEN {raise_} THEN {q.ts('c.s + 86401')} END, "
            f"CASE WHEN c.p = 0 THEN {payment} END, {q.ts('c.s + 1')}, "
            f"CASE c.p WHEN 0 THEN {q.ts('c.s + 61')} WHEN 3 THEN CASE c.r WHEN 0 THEN "
            f"{q.ts('c.s + 86401')} ELSE {q.ts('c.s + 3700')} END ELSE {q.ts('c.s + 1')} END "
            f"FROM {q.changes} ORDER BY c.i"
        ),
        "change_transitions": (
            "INSERT INTO change_transitions (request_id, from_state, to_state, reason, "
            f"message_id, at) {q.with_}SELECT {request}, e.from_state, e.to_state, e.reason, "
            f"CASE WHEN e.to_state = 'expired' THEN NULL ELSE 'msg-{TAG}-' || c.i || '-' || "
            f"e.seq END, {q.ts('c.s + e.at')} FROM {q.changes} "
            + join.format(
                kinds=_kinds(
                    _TRANSITIONS, ("p", "r", "seq", "from_state", "to_state", "reason", "at")
                )
            )
            + " ORDER BY c.s + e.at, c.i, e.seq"
        ),
        "payments": (
            "INSERT INTO payments (payment_id, order_id, amount, currency, paid_at, "
            f"received_at, status, refund_reason) {q.with_}SELECT {payment}, {order}, 500, "
            f"'CHF', {q.ts('c.s + 50')}, CASE c.p WHEN 0 THEN {q.ts('c.s + 61')} ELSE "
            f"{q.ts('c.s + 3700')} END, CASE c.p WHEN 0 THEN 'used' ELSE 'refunded' END, "
            f"CASE WHEN c.p = 3 THEN 'change_cancelled' END FROM {q.changes} "
            "WHERE c.p = 0 OR (c.p = 3 AND c.r = 1) ORDER BY c.i"
        ),
        "limit_history": (
            "INSERT INTO limit_history (service_mail_id, version, request_id, "
            "previous_address_limit, address_limit, addresses_in_use, plan, applied_at) "
            f"{q.with_}SELECT {mail}, 2 * (c.k / {ROUND}) + c.p + 1, {request}, "
            f"CASE c.p WHEN 0 THEN {START_LIMIT} ELSE {START_LIMIT + 5} END, "
            f"CASE c.p WHEN 0 THEN {START_LIMIT + 5} ELSE {START_LIMIT} END, 0, 'premium', "
            f"CASE c.p WHEN 0 THEN {q.ts('c.s + 61')} ELSE {q.ts('c.s + 1')} END "
            f"FROM {q.changes} WHERE c.p < 2 ORDER BY c.i"
        ),
        "outbox": (
            "INSERT INTO outbox (event_id, type, subject, body, order_id, created_at, sent_at) "
            f"{q.with_}SELECT {q.event_id()}, e.type, {mail}, {body}, {order}, "
            f"{q.ts('c.s + e.at')}, {q.ts('c.s + e.at + 1')} FROM {q.changes} "
            + join.format(kinds=_kinds(_EVENTS, ("p", "r", "seq", "type", "at")))
            + " ORDER BY c.s + e.at, c.i, e.seq"
        ),
        "processed_messages": (
            "INSERT INTO processed_messages (message_id, task, outcome, order_id, "
            f"processed_at) {q.with_}SELECT 'msg-{TAG}-' || c.i || '-' || e.seq, e.task, "
            f"e.outcome, {order}, {q.ts('c.s + e.at')} FROM {q.changes} "
            + join.format(kinds=_kinds(_MESSAGES, ("p", "r", "seq", "task", "outcome", "at")))
        ),
    }


def rounded(changes: int, mails: int) -> int:
    """Whole rounds of four per Service Mail, so each ends at the workload's limit."""
    per_round = ROUND * mails
    return max(per_round, -(-changes // per_round) * per_round)


def seed_history(
    url: str,
    mails: int,
    changes: int,
    mail_tag: str = "base",
    newest_days: float = 2.0,
    span_days: float = 27.0,
) -> dict[str, Any]:
    """`changes` (rounded up, `rounded`) past changes on Service Mails sm-<mail_tag>-0 …
    mails - 1, already in the table; then the Service Mails' versions, and ANALYZE on
    PostgreSQL (as autovacuum would after such a load). Rows per table, and seconds."""
    n = rounded(changes, mails)
    postgres = url.startswith("postgresql")
    t0 = int((datetime.now(UTC) - timedelta(days=newest_days + span_days)).timestamp())
    q = _Sql(postgres, n, mails, t0, int(span_days * 86400))
    engine = create_engine(url)
    start = time.monotonic()
    with engine.begin() as conn:
        for sql in _statements(q, mail_tag).values():
            conn.exec_driver_sql(sql)
        conn.execute(
            text(
                "UPDATE service_mails SET version = (SELECT max(h.version) FROM limit_history "
                "AS h WHERE h.service_mail_id = service_mails.id) WHERE id IN "
                "(SELECT service_mail_id FROM limit_history)"
            )
        )
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        counts = {name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
                  for name in TABLES}  # fmt: skip
    engine.dispose()
    return {"changes": n, "rows": counts, "seconds": round(time.monotonic() - start, 1),
            "newest_days_ago": newest_days, "span_days": span_days}  # fmt: skip

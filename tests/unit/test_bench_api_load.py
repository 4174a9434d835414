"""The benchmark's read-API phase: what it calls, and how its row reads."""

from __future__ import annotations

from bench.api_load import _calls
from bench.report import _read_api


def test_the_load_alternates_service_mail_reads_and_quotes_on_seeded_mails() -> None:
    calls = _calls(mails=5, count=6)
    assert [name for name, _ in calls] == ["service_mail", "quote"] * 3
    assert all(path.startswith("/v1/service-mails/sm-base-") for _, path in calls)
    assert all("account_id=acc-base-" in path for name, path in calls if name == "quote")


def test_the_table_gives_each_call_its_percentiles_and_errors() -> None:
    timing = {"n": 98, "p50_ms": 2.0, "p99_ms": 9.5, "max_ms": 12.0, "errors": 2}
    rows = _read_api(
        {"sent_rate": 199.8, "seconds": 10.0, "calls": {"service_mail": timing, "quote": timing}}
    )
    assert len(rows) == 2
    assert "p50 2.0 / p99 9.5 / max 12.0 ms; 2 errors of 100" in rows[1]
    assert _read_api(None) == []


def test_the_row_of_the_run_beside_an_order_feed_says_how_fast_the_worker_was_fed() -> None:
    timing = {"n": 100, "p50_ms": 3.0, "p99_ms": 30.0, "max_ms": 40.0, "errors": 0}
    calls = {"service_mail": timing, "quote": timing}
    idle = _read_api({"sent_rate": 200.0, "seconds": 20.0, "calls": calls})
    fed = _read_api(
        {"sent_rate": 200.0, "seconds": 20.0, "calls": calls, "beside": {"sent_rate": 151.2}}
    )
    assert "worker idle" in idle[0]
    assert "worker taking 151.2 messages/s" in fed[0]

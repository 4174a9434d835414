"""The per-minute figures behind `status --plot`."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.ops.plot import per_minute_counts, per_minute_percentiles

T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_latencies_are_summarised_per_minute_as_p50_and_p99() -> None:
    points = [
        (T.replace(second=s), float(v)) for s, v in zip(range(0, 50), range(1, 51), strict=True)
    ]
    [(minute, p50, p99)] = per_minute_percentiles(points)
    assert minute == T and p50 == 25.5 and 49 < p99 <= 50


def test_a_single_value_is_its_own_p50_and_p99() -> None:
    assert per_minute_percentiles([(T, 7.0)]) == [(T, 7.0, 7.0)]


def test_messages_are_counted_per_minute_in_order() -> None:
    later = T.replace(minute=1)
    assert per_minute_counts([later, T, T.replace(second=59)]) == [(T, 2), (later, 1)]

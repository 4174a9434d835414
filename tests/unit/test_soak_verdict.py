"""The soak's verdict: flat is judged on peaks after warm-up, and it can say no."""

from __future__ import annotations

from typing import Any

from bench.soak import BOUNDED, verdict


def _samples(grow: float = 0.0, rate_after: float = 100.0) -> list[dict[str, Any]]:
    rows = []
    for n in range(30):
        saw = 1000 + 400 * (n % 3)  # pruning saws the figures between passes
        rows.append({
            "t": 5.0 * n, "messages": 500 * n,
            "messages_per_second": 100.0 if n < 20 else rate_after,
            **{name: saw + grow * n for name in BOUNDED},
            "database_bytes": 10_000 + 900 * 50 * n,
        })  # fmt: skip
    return rows


def test_a_sawing_but_bounded_run_is_flat_and_says_how_the_history_grows() -> None:
    v = verdict(_samples(), orders=7_250)
    assert v["flat"] and v["rate_holds"]
    assert all(f["flat"] for f in v["figures"].values())
    assert v["database_bytes_per_order"] > 0


def test_a_figure_that_keeps_growing_is_not_flat() -> None:
    v = verdict(_samples(grow=100.0), orders=7_250)
    assert not v["flat"] and not v["figures"]["outbox_rows"]["flat"]


def test_a_rate_that_falls_is_not_flat() -> None:
    v = verdict(_samples(rate_after=50.0), orders=7_250)
    assert not v["rate_holds"] and not v["flat"]

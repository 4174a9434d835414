"""The benchmark's batching figures (bench/batches.py): the curve's sizes, the baseline the
ratio is against, the batch sizes read from the worker's histogram, and their tables."""

from __future__ import annotations

from typing import Any

import pytest

from bench.batches import (
    curve_lines,
    faster_baseline,
    histogram_delta,
    parse_histogram,
    parse_sizes,
    sizes_summary,
)
from bench.report import table


def test_the_sizes_are_a_comma_list_each_once_in_the_order_given() -> None:
    assert parse_sizes("1,2,5,10,20,50") == (1, 2, 5, 10, 20, 50)
    assert parse_sizes(" 5, 1 ,5,") == (5, 1)


@pytest.mark.parametrize("text", ["", ",", "1,x", "0", "101", "2.5"])
def test_a_size_that_is_not_one_quota_batch_max_takes_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_sizes(text)


def test_the_ratio_is_against_the_faster_baseline_and_prefetch_1_without_batching() -> None:
    one, batch = {"rate": 300.0}, {"rate": 350.0}
    assert faster_baseline(one, batch) == ("prefetch_batch", batch)
    assert faster_baseline(one, {"rate": 250.0}) == ("prefetch_1", one)
    assert faster_baseline(one, {"rate": 300.0}) == ("prefetch_1", one)  # a tie
    assert faster_baseline(one, None) == ("prefetch_1", one)


def _exposition(counts: dict[str, int], total: float) -> str:
    lines = ["# HELP quota_batch_size Messages handled in one transaction",
             "# TYPE quota_batch_size histogram"]  # fmt: skip
    cumulative = 0
    for le in ("1.0", "2.0", "5.0", "10.0", "+Inf"):
        cumulative += counts.get(le, 0)
        lines.append(f'quota_batch_size_bucket{{le="{le}"}} {cumulative}.0')
    lines += [f"quota_batch_size_count {cumulative}.0", f"quota_batch_size_sum {total}"]
    lines += ["# TYPE quota_messages_total counter", 'quota_messages_total{task="t"} 7.0']
    return "\n".join(lines) + "\n"


def test_the_batches_of_a_drain_are_the_histograms_difference() -> None:
    before = parse_histogram(_exposition({"1.0": 2}, 2.0))
    after = parse_histogram(_exposition({"1.0": 3, "5.0": 4, "10.0": 1, "+Inf": 1}, 40.0))
    assert before == {"buckets": {"1": 2.0, "2": 2.0, "5": 2.0, "10": 2.0, "+Inf": 2.0},
                      "count": 2.0, "sum": 2.0}  # fmt: skip
    delta = histogram_delta(before, after)
    assert delta == {"batches": 7, "messages": 38, "mean": 5.43,
                     "sizes": {"1": 1, "3-5": 4, "6-10": 1, "11+": 1}}  # fmt: skip
    assert sizes_summary(delta) == "7 batches, mean 5.43 (1: 1, 3-5: 4, 6-10: 1, 11+: 1)"


def test_no_batch_and_no_reading_are_told_apart() -> None:
    empty = parse_histogram("")
    assert empty == {"buckets": {}, "count": 0.0, "sum": 0.0}
    none = histogram_delta(empty, empty)
    assert none == {"batches": 0, "messages": 0, "mean": None, "sizes": {}}
    assert sizes_summary(none) == "no batch (every message alone)"
    assert sizes_summary(None) == "not measured"


def _point(size: int, rate: float, saturated: bool = False) -> dict[str, Any]:
    def lat(share: float, p50: float, p99: float) -> dict[str, Any]:
        return {"share": share, "p50_ms": p50, "p99_ms": p99, "missing": 0,
                "caught_up_after_s": 2.0 if saturated else 0.1}  # fmt: skip

    return {"batch_max": size, "drain": {"rate": rate, "batch_sizes": None},
            "ratio": round(rate / 200, 3), "worker_cpu_ms_per_message": 3.456,
            "server_cpu_ms_per_message": {"postgres": 1.5},
            "latency": [lat(0.5, 4.0, 9.0), lat(0.9, 6.0, 30.0)]}  # fmt: skip


def test_the_curve_table_has_a_row_per_size() -> None:
    assert curve_lines([], "prefetch 1") == []
    lines = curve_lines([_point(1, 100.0), _point(5, 250.0, saturated=True)], "prefetch 1")
    assert "ratio against the prefetch 1 baseline" in lines[1]
    assert lines[3].startswith("| batch size | messages/s | ratio to baseline | p50 / p99 at 50%")
    assert lines[5] == "| 1 | 100.0 | 0.5 | 4.0 / 9.0 | 6.0 / 30.0 | 3.46 | postgres 1.50 | " \
        "not measured |"  # fmt: skip
    assert lines[6].startswith("| 5 | 250.0 | 1.25 | 4.0 / 9.0 SATURATED | 6.0 / 30.0 SATURATED")


def _drain(rate: float) -> dict[str, Any]:
    return {"messages": 1000, "rate": rate, "cpu_seconds": 2.0, "peak_rss_mb": [50.0],
            "rss_mb_start": 40.0, "rss_mb_warm": 45.0, "rss_mb_end": 46.0,
            "server_cpu_seconds": {"postgres": 1.0}, "outcomes": {"applied": 10}}  # fmt: skip


def _result(batch: dict[str, Any] | None, against: str) -> dict[str, Any]:
    one = {**_drain(300.0), "batch_max": 1}
    base = batch if against == "prefetch_batch" and batch else one
    return {
        "target": "SQLite + Redis (embedded)",
        "options": {
            "processes": 1,
            "pool": "prefork",
            "concurrency": 2,
            "mails": 10,
            "orders": 100,
            "batch_max": batch["batch_max"] if batch else 1,
        },
        "baseline": base,
        "baseline_prefetch_1": one,
        "baseline_prefetch_batch": batch,
        "ratio_against": against,
        "ratio": round(240.0 / base["rate"], 3),
        "quota_worker": {**_drain(240.0), "batch_sizes": None},
        "orders_per_second": 24.0,
        "cpu_ms_per_order": 20.0,
        "baseline_cpu_ms_per_order": 20.0,
        "latency": [],
        "database_scans": None,
        "database_floor": {
            "rate": 400.0,
            "cpu_ms_per_message": 1.0,
            "server_cpu_ms_per_message": {},
        },
        "batch_curve": [_point(5, 250.0)],
    }


def test_the_table_shows_both_baselines_and_names_the_faster() -> None:
    text = table(_result({**_drain(400.0), "batch_max": 5}, "prefetch_batch"))
    assert (
        "| figure | no-op, prefetch 1 | no-op, prefetch of batch 5 (faster) | quota-worker |"
        in text
    )
    assert "| messages/s | 300.0 | 400.0 | 240.0 |" in text
    assert "| ratio (quota / faster baseline: prefetch of batch 5) | 0.8 | 0.6 | **0.6** |" in text
    assert "| outcomes | | | {'applied': 10} |" in text
    assert "ratio against the prefetch of batch 5 baseline" in text
    assert "| batches of the drain | | | not measured |" in text


def test_the_table_without_batching_keeps_its_one_baseline_column() -> None:
    text = table(_result(None, "prefetch_1"))
    assert "| figure | no-op baseline | quota-worker |" in text
    assert "| ratio (quota / baseline) |  | **0.8** |" in text
    assert "| outcomes | | {'applied': 10} |" in text

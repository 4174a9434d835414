"""The benchmark's criterion for a sequential scan gone wrong (bench/scans.py): only
scans of a table over SMALL_TABLE_PAGES count, and the summary says both figures."""

from __future__ import annotations

from collections import namedtuple

from bench.scans import SMALL_TABLE_PAGES, _large, summary

Row = namedtuple("Row", "seq_scan seq_tup_read pages")


def test_only_the_scans_of_a_table_over_the_limit_at_the_interval_end_count() -> None:
    large: dict[str, dict[str, int]] = {}
    small, big = SMALL_TABLE_PAGES, SMALL_TABLE_PAGES + 1
    before = {"a": Row(1, 10, 1), "b": Row(0, 0, 1)}
    _large(before, {"a": Row(4, 70, small), "b": Row(2, 300, big), "new": Row(5, 5, 99)}, large)
    assert large == {"b": {"seq_scan": 2, "seq_tup_read": 300}}
    _large({"b": Row(2, 300, big)}, {"b": Row(3, 500, big)}, large)
    assert large == {"b": {"seq_scan": 3, "seq_tup_read": 500}}


def test_the_summary_gives_all_rows_and_those_of_large_tables_and_flags_only_those() -> None:
    scans = {
        "small_table_pages": 16,
        "tables": {"addresses": {"seq_scan": 9, "seq_tup_read": 0, "large_seq_tup_read": 0},
                   "outbox": {"seq_scan": 3, "seq_tup_read": 200, "large_seq_tup_read": 100}},
        "seq_scanned_hot_path_tables": ["outbox"],
    }  # fmt: skip
    text = summary(scans, 100)
    assert text.startswith("2.0 rows read by sequential scans per message, 1.0 from tables")
    assert "**sequential scans of outbox over 16 pages**" in text
    scans["seq_scanned_hot_path_tables"] = []
    assert summary(scans, 100).endswith("none of a hot-path table over 16 pages")

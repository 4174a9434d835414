"""The latency run's parts (bench/latency.py): payment → event cut where the message was
handled and where the relay appended the event, and what the slowest 1% spent where."""

from __future__ import annotations

from bench.latency import segments


def test_each_part_is_measured_per_order_and_the_slowest_show_where_their_time_went() -> None:
    orders = [f"o{n}" for n in range(100)]
    paid = {o: 0.0 for o in orders}
    handled = {o: 0.010 for o in orders}
    published = {o: 0.012 for o in orders}
    seen = {o: 0.013 for o in orders}
    handled["o7"], published["o7"], seen["o7"] = 0.500, 0.502, 0.503  # one waited to be handled
    parts = segments(orders, paid, handled, published, seen)
    assert list(parts) == ["paid_to_handled", "handled_to_stream", "stream_to_reader"]
    assert parts["paid_to_handled"]["p50_ms"] == 10.0
    assert parts["paid_to_handled"]["max_ms"] == 500.0
    assert parts["handled_to_stream"]["p50_ms"] == 2.0
    assert parts["stream_to_reader"]["p99_ms"] == 1.0
    assert parts["paid_to_handled"]["slowest_1pct_mean_ms"] == 500.0  # o7 is the slowest 1%
    assert parts["handled_to_stream"]["slowest_1pct_mean_ms"] == 2.0


def test_no_orders_no_parts() -> None:
    assert segments([], {}, {}, {}, {}) == {
        "paid_to_handled": {}, "handled_to_stream": {}, "stream_to_reader": {}
    }  # fmt: skip

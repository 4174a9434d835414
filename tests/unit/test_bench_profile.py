"""The profile's reading of py-spy's raw output (bench/profile.py)."""

from __future__ import annotations

from bench.profile import parse, summarize

RAW = [
    'process 10:"python -m worker.cli run";process 11:"celery worker";process 12:"celery worker";'
    "<module> (worker/cli.py:6);handle (worker/service/bus.py:40);"
    "execute (sqlalchemy/engine/base.py:1400) 30\n",
    'process 10:"python -m worker.cli run";process 11:"celery worker";process 12:"celery worker";'
    "<module> (worker/cli.py:6);handle (worker/service/bus.py:41) 10\n",
    'process 10:"python -m worker.cli run";process 11:"celery worker";'
    "<module> (worker/cli.py:6);flush (celery/events/dispatcher.py:9) 20\n",
    'process 10:"python -m worker.cli run";<module> (worker/cli.py:6);'
    "drain (worker/adapters/relay.py:90);drain (worker/adapters/relay.py:99) 40\n",
    "py-spy> a line that is no sample\n",
]
ROLES = {10: "supervisor", 11: "consumer", 12: "pool"}


def test_each_sample_belongs_to_the_innermost_process_with_its_frames_root_first() -> None:
    samples = parse(RAW)
    assert [(pid, count) for pid, _, count in samples] == [(12, 30), (12, 10), (11, 20), (10, 40)]
    assert samples[0][1] == [
        "<module> (worker/cli.py)",
        "handle (worker/service/bus.py)",
        "execute (sqlalchemy/engine/base.py)",
    ]


def test_shares_are_per_role_and_inclusive_with_a_recursive_frame_counted_once() -> None:
    report = summarize(parse(RAW), ROLES)
    assert "100 samples holding the GIL" in report
    assert "  40.0%  pool" in report and "  40.0%  supervisor" in report
    assert "  20.0%  consumer" in report
    pool = report.split("pool, inclusive")[1].split("pool, self time:")
    # In every sample of the role: the framework around its work, left out.
    assert "handle (worker/service/bus.py)" not in pool[0]
    assert "<module>" not in pool[0]
    assert "  75.0%  execute (sqlalchemy/engine/base.py)" in pool[0]
    assert "  75.0%  execute (sqlalchemy/engine/base.py)" in pool[1]
    assert "  25.0%  handle (worker/service/bus.py)" in pool[1]  # its own time: one line
    supervisor = report.split("supervisor, self time:")[1]
    assert " 100.0%  drain (worker/adapters/relay.py)" in supervisor  # not 200%

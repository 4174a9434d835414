"""The benchmark's disk probe (bench/measure.py): it times real flushes of a file beside
the run's data, reports them, and leaves nothing behind."""

from __future__ import annotations

import time
from pathlib import Path

from bench.measure import SyncProbe


def test_the_probe_times_each_flush_and_removes_its_file(tmp_path: Path) -> None:
    with SyncProbe(tmp_path) as probe:
        deadline = time.monotonic() + 5
        while len(probe.waits) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    summary = probe.summary()
    assert summary["n"] >= 3 and summary["max_ms"] >= summary["p50_ms"] >= 0
    assert summary["stalls_over_100ms"] == sum(w > 0.1 for w in probe.waits)
    assert list(tmp_path.iterdir()) == []

"""`quota-worker demo` runs on a bare machine and every order ends as its story says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import short_tmp

pytestmark = pytest.mark.e2e


def test_the_demo_plays_the_day_and_every_order_ends_as_expected() -> None:
    data_dir = short_tmp("qdemo-") / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env["COLUMNS"] = "160"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", "demo", "--data-dir", str(data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for outcome in (
        "applied",
        "rejected:below_plan_minimum",
        "rejected:managed_by_ksuite",
        "rejected:not_owner",
        "rejected:addresses_in_use",
        "rejected:payment_mismatch",
        "rejected:invalid_message",
        "duplicate_payment",
        "cancelled",
        "expired",
    ):
        assert outcome in result.stdout, outcome
    assert "no: expected" not in result.stdout

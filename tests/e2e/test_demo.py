"""`quota-worker demo` runs on a bare machine and every order ends as its story says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import short_tmp

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    data_dir = short_tmp("qdemo-") / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env["COLUMNS"] = "160"
    try:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", "demo", "--data-dir", str(data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def test_the_demo_plays_the_day_and_every_order_ends_as_expected(
    demo: subprocess.CompletedProcess[str],
) -> None:
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
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
        assert outcome in demo.stdout, outcome
    assert "no: expected" not in demo.stdout


def test_the_demo_prints_its_console_a_one_off_token_and_how_to_keep_them_up(
    demo: subprocess.CompletedProcess[str],
) -> None:
    assert "/console/" in demo.stdout and "operator token: " in demo.stdout
    assert "quota-worker demo --keep-running" in demo.stdout

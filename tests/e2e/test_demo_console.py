"""`quota-worker demo --keep-running` leaves the day it played on the API: the printed
one-off token reads its orders over HTTP until Ctrl-C, which stops everything cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from tests.e2e.conftest import free_port
from tests.helpers import short_tmp, wait_until

pytestmark = pytest.mark.e2e


def _order(base: str, token: str, order_id: str) -> dict[str, object]:
    request = urllib.request.Request(f"{base}/v1/orders/{order_id}")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        body: dict[str, object] = json.load(answer)
        return body


def test_the_demo_kept_running_serves_its_day_over_http_until_ctrl_c() -> None:
    data_dir = short_tmp("qdemoapi-") / "demo"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env.update(COLUMNS="160", QUOTA_API_PORT=str(port))
    out = data_dir.parent / "demo.out"
    command = [sys.executable, "-m", "worker.cli", "demo", "--data-dir", str(data_dir)]
    demo = subprocess.Popen(
        [*command, "--keep-running"], env=env, stdout=out.open("wb"), stderr=subprocess.STDOUT
    )
    text = lambda: out.read_text(errors="replace")  # noqa: E731
    try:
        assert wait_until(lambda: demo.poll() is not None or "Ctrl-C stops them" in text(), 300)
        assert demo.poll() is None, text()[-3000:]
        assert f"http://127.0.0.1:{port}/console/" in text()
        token = re.findall(r"^operator token: (\S+)$", text(), re.MULTILINE)[-1]
        api = [p for p in psutil.Process(demo.pid).children() if "api" in p.cmdline()]
        first = _order(f"http://127.0.0.1:{port}", token, "order-01")
        assert (first["order_id"], first["state"]) == ("order-01", "applied")
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=120)
    try:
        assert code == 0, text()[-3000:]
        assert psutil.wait_procs(api, timeout=10)[1] == []
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def test_a_demo_killed_with_sigkill_leaves_no_process_behind() -> None:
    data_dir = short_tmp("qdemokill-") / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env.update(COLUMNS="160", QUOTA_API_PORT=str(free_port()))
    out = data_dir.parent / "demo.out"
    command = [sys.executable, "-m", "worker.cli", "demo", "--data-dir", str(data_dir)]
    demo = subprocess.Popen(command, env=env, stdout=out.open("wb"), stderr=subprocess.STDOUT)
    worker_log = data_dir / "worker.log"
    try:
        ready = lambda: worker_log.exists() and " ready." in worker_log.read_text(errors="replace")  # noqa: E731
        assert wait_until(lambda: demo.poll() is not None or ready(), 120), out.read_text()
        family = psutil.Process(demo.pid).children(recursive=True)
        # the embedded Redis, `run`, its Celery worker and pool, the API
        assert len(family) >= 4, [p.cmdline() for p in family]
        demo.kill()
        demo.wait(timeout=10)
        _gone, alive = psutil.wait_procs(family, timeout=60)
        assert alive == [], f"outlived the demo: {[p.cmdline() for p in alive]}"
    finally:
        if demo.poll() is None:
            demo.kill()
        shutil.rmtree(data_dir.parent, ignore_errors=True)

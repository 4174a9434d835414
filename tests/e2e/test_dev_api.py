"""`quota-worker dev` serves the HTTP API beside the worker: a printed one-off operator
token opens /v1, the token is never logged, and the API dies with `dev`, even by SIGKILL."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import free_port
from tests.helpers import get_json, short_tmp, wait_until

pytestmark = pytest.mark.e2e


@dataclass
class Dev:
    process: subprocess.Popen[bytes]
    out: Path
    port: int

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def token(self) -> str | None:
        found = re.search(r"^operator token: (\S+)$", self.text(), re.MULTILINE)
        return found.group(1) if found else None

    def api_processes(self) -> list[psutil.Process]:
        return [
            p for p in psutil.Process(self.process.pid).children(recursive=True)
            if p.cmdline()[-2:] == ["worker.cli", "api"]
        ]  # fmt: skip


def start_dev(data_dir: Path, port: int) -> Dev:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env.update(QUOTA_DATA_DIR=str(data_dir), QUOTA_API_PORT=str(port), QUOTA_LOG_FORMAT="json")
    out = data_dir / "dev.out"
    command = [sys.executable, "-m", "worker.cli", "dev", "--processes", "1", "--concurrency", "1"]
    process = subprocess.Popen(
        command, env=env, stdout=out.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    dev = Dev(process, out, port)
    # Its Celery worker ready: from then on a signal stops it cleanly.
    started = lambda: process.poll() is not None or " ready." in dev.text()  # noqa: E731
    if not wait_until(started, 90, step=0.2) or process.poll() is not None:
        process.kill()
        raise RuntimeError(f"quota-worker dev did not start:\n{dev.text()[-3000:]}")
    return dev


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = short_tmp("qdevapi-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


_get = get_json


def test_dev_serves_readyz_and_v1_with_the_token_it_prints_and_never_logs_it(
    data_dir: Path,
) -> None:
    dev = start_dev(data_dir, free_port())
    try:
        base = f"http://127.0.0.1:{dev.port}"
        token = dev.token()
        assert token, dev.text()
        assert f"{base}/console/" in dev.text()
        assert _get(f"{base}/readyz")[0] == 200
        assert _get(f"{base}/v1/service-mails/sm-nobody", token) == (
            404,
            {"error": "unknown_service_mail", "detail": "No Service Mail sm-nobody is known."},
        )
        assert _get(f"{base}/v1/service-mails/sm-nobody", "not-" + token)[0] == 401
        api = dev.api_processes()
        assert len(api) == 1 and token not in " ".join(api[0].cmdline())
        assert "QUOTA_API_TOKENS" not in " ".join(api[0].cmdline())
    finally:
        dev.process.send_signal(signal.SIGINT)
        code = dev.process.wait(timeout=120)
    assert code == 0, dev.text()[-3000:]
    assert "api stopped" in dev.text()
    logged = [line for line in dev.text().splitlines() if line.startswith("{")]
    assert logged and not [line for line in logged if token in line]


def test_a_dev_killed_with_sigkill_leaves_no_api_process(data_dir: Path) -> None:
    dev = start_dev(data_dir, free_port())
    api = dev.api_processes()
    assert len(api) == 1
    os.kill(dev.process.pid, signal.SIGKILL)
    dev.process.wait(timeout=10)
    _gone, alive = psutil.wait_procs(api, timeout=30)
    assert alive == [], f"the API outlived dev:\n{dev.text()[-2000:]}"


def test_a_dev_killed_with_sigkill_leaves_no_embedded_redis(data_dir: Path) -> None:
    dev = start_dev(data_dir, free_port())
    redis_server = [
        p for p in psutil.Process(dev.process.pid).children()
        if "redis-server" in " ".join(p.cmdline())
    ]  # fmt: skip
    assert len(redis_server) == 1
    os.kill(dev.process.pid, signal.SIGKILL)
    dev.process.wait(timeout=10)
    _gone, alive = psutil.wait_procs(redis_server, timeout=30)
    assert alive == [], "the embedded Redis outlived dev"


def test_dev_says_when_its_port_is_taken_and_runs_the_worker_without_the_api(
    data_dir: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        dev = start_dev(data_dir, taken.getsockname()[1])
        try:
            assert "(QUOTA_API_PORT) is taken by another program: the API is not" in dev.text()
            assert dev.api_processes() == []
            assert dev.process.poll() is None
        finally:
            dev.process.send_signal(signal.SIGTERM)
            assert dev.process.wait(timeout=120) == 0

"""A worker dies whole: when `quota-worker run` is killed, however, its Celery worker
processes (in a session of their own) stop too, and a new `run` finds no stale consumer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.conftest import Services
from tests.e2e.conftest import start_worker, stop_worker
from worker.entrypoints.lifeline import SUPERVISOR_PID_ENV, die_with_supervisor


def _workers_of(supervisor: int) -> list[psutil.Process]:
    """The Celery worker processes under the supervisor, and their pool processes."""
    return psutil.Process(supervisor).children(recursive=True)


@pytest.mark.parametrize("kill", ["the supervisor alone", "its process group"])
def test_a_killed_supervisor_takes_its_worker_processes_along(
    services: Services, kill: str
) -> None:
    worker = start_worker(services, f"lifeline-{kill.replace(' ', '-')}.log")
    supervisor = worker.process.pid
    workers = _workers_of(supervisor)
    assert len(workers) >= 3, workers  # one Celery worker, its pool of two
    if kill == "the supervisor alone":
        os.kill(supervisor, signal.SIGKILL)
    else:
        os.killpg(os.getpgid(supervisor), signal.SIGKILL)
    worker.process.wait(timeout=10)
    # Celery's warm shutdown: in-flight messages finish or go back, then the pool stops.
    _gone, alive = psutil.wait_procs(workers, timeout=60)
    assert alive == [], f"still running after the supervisor died: {alive}\n{worker.tail()}"
    again = start_worker(services, f"lifeline-again-{kill.replace(' ', '-')}.log")
    assert stop_worker(again) == 0


def test_a_worker_started_by_hand_follows_no_one() -> None:
    assert die_with_supervisor({}) is False


def test_a_worker_whose_supervisor_is_already_gone_stops_at_once() -> None:
    """The supervisor died before the worker asked to be told: it ends itself."""
    follow = "from worker.entrypoints.lifeline import die_with_supervisor as d; d(); input()"
    env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid() + 999_999)}
    done = subprocess.run(
        [sys.executable, "-c", follow], env=env, stdin=subprocess.PIPE, timeout=30, check=False
    )
    assert done.returncode == -signal.SIGTERM


def test_a_worker_follows_its_supervisor_while_it_lives() -> None:
    follow = "from worker.entrypoints.lifeline import die_with_supervisor as d; d(); print('ok')"
    env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())}
    done = subprocess.run(
        [sys.executable, "-c", follow], env=env, capture_output=True, timeout=30, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, b"ok")

"""`quota-worker demo`: a realistic day of orders through the real queues and worker.

It starts the embedded default in its own directory, runs `quota-worker run`
as a child process, plays the day's story (`demo_story`: published with a
plain Celery producer, as checkout, payments and the mail platform would),
reads the outcome back from the event stream (`demo_outcome`), and checks
every order ended as the story expects.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from celery import Celery

from worker.adapters.embedded import EmbeddedRedis, EmbeddedRedisError
from worker.adapters.migrate import upgrade
from worker.entrypoints.api_child import ApiChild, start_beside
from worker.entrypoints.lifeline import SUPERVISOR_PID_ENV
from worker.ops.demo_day import PAYMENT_TIMEOUT, Day, console
from worker.ops.demo_outcome import Stream, report, wait_all, waiter
from worker.ops.demo_story import play
from worker.settings import EMBEDDED_DB_FILE

API_SETTINGS = ("QUOTA_API_HOST", "QUOTA_API_PORT", "QUOTA_API_TOKENS")


def run_demo(data_dir: Path, keep: bool = False, keep_running: bool = False) -> int:
    data_dir = data_dir.resolve()
    _prepare(data_dir, keep)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the story, not the migration
    console.print(f"[bold]quota-worker demo[/bold] · files in {data_dir}")
    try:
        embedded = EmbeddedRedis(data_dir).start()
    except EmbeddedRedisError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    worker = api = None
    try:
        env = _environment(data_dir, embedded)
        upgrade(env["QUOTA_DATABASE_URL"])
        worker = _start_worker(env, data_dir / "worker.log")
        api, served = _start_api(env, data_dir / "api.log")
        console.print(served, highlight=False, markup=False)
        stream = Stream(embedded.client(), env["QUOTA_EVENTS_STREAM"])
        day = Day(Celery("checkout", broker=embedded.broker_url, set_as_current=False))
        play(day, waiter(day, stream, data_dir))
        console.rule("waiting for every order to settle")
        ok = wait_all(day.orders, stream)
        report(day.orders, stream)
        if keep_running:
            _stay_up(served)
        else:
            _hint(data_dir, env, api is not None)
        return 0 if ok else 1
    finally:
        if api is not None:
            api.stop()
        if worker is not None:
            _stop_worker(worker)
        embedded.stop()


def _prepare(data_dir: Path, keep: bool) -> None:
    if data_dir.exists() and not keep:
        ours = {EMBEDDED_DB_FILE, "redis.log", "worker.log", "api.log", "appendonly.aof"}
        ours.add("appendonlydir")
        strangers = [p.name for p in data_dir.iterdir() if not p.name.startswith(tuple(ours))]
        if strangers:
            raise SystemExit(
                f"{data_dir} holds files the demo did not write ({strangers[:3]}); "
                "choose another --data-dir"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)


def _environment(data_dir: Path, embedded: EmbeddedRedis) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env.update(
        QUOTA_DATA_DIR=str(data_dir),
        QUOTA_DATABASE_URL=f"sqlite:///{data_dir / EMBEDDED_DB_FILE}",
        QUOTA_BROKER_URL=embedded.broker_url,
        QUOTA_REDIS_URL=embedded.redis_url,
        QUOTA_EVENTS_STREAM="quota.events",
        QUOTA_PAYMENT_TIMEOUT_SECONDS=str(PAYMENT_TIMEOUT),
        QUOTA_SWEEP_INTERVAL_SECONDS="1",
        # Short, like the payment timeout, so the day plays in a minute.
        QUOTA_EXPIRY_GRACE_SECONDS="1",
        QUOTA_PROVISIONING_GRACE_SECONDS="10",
        QUOTA_LOG_FORMAT="json",
    )
    return env


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    console.print(f"starting the worker (its log: {log}) ...")
    command = [sys.executable, "-m", "worker.cli", "run", "--processes", "1", "--concurrency", "2"]
    process = subprocess.Popen(
        command,
        # `run` dies with the demo, however the demo dies (worker/entrypoints/lifeline.py).
        env={**env, SUPERVISOR_PID_ENV: str(os.getpid())},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start; see {log}")
        time.sleep(0.2)
    return process


def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()


def _start_api(env: dict[str, str], log: Path) -> tuple[ApiChild | None, str]:
    """The API on the demo's data; the operator's own QUOTA_API_* settings are kept."""
    mine = {k: v for k, v in os.environ.items() if k in API_SETTINGS}
    console.print(f"starting the API (its log: {log}) ...")
    return start_beside(mine.get("QUOTA_API_HOST", "127.0.0.1"), {**env, **mine}, log)


def _stay_up(served: str) -> None:
    """--keep-running: the worker and the API serve the day until SIGINT or SIGTERM."""
    received: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: received.append(number))
    console.rule("the day is played: look at it")
    console.print(served, highlight=False, markup=False)
    console.print("The worker and the API stay up on the day's data: Ctrl-C stops them.")
    while not received:
        time.sleep(0.2)


def _hint(data_dir: Path, env: dict[str, str], served: bool) -> None:
    if served:
        console.print(
            "\nTo look at the day in the console, run [bold]quota-worker demo "
            "--keep-running[/bold]: the worker and the API stay up after it until Ctrl-C."
        )
    console.print(
        "\nLook closer (the demo's worker has stopped; its data stays):\n"
        f"  QUOTA_DATA_DIR={data_dir} QUOTA_DATABASE_URL={env['QUOTA_DATABASE_URL']} "
        "quota-worker requests show order-01\n"
        f"  sqlite3 {data_dir / EMBEDDED_DB_FILE} 'select * from dead_letters'"
    )

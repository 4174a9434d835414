"""The read API under an open-loop load: a real `quota-worker api` process on the bench's
database, and from this process GET /v1/service-mails/{id} and its /quote at a fixed rate
whatever the API does, each call timed from the moment it was due (a call that waits for
a free connection counts its wait, so a slow API cannot hide behind fewer calls)."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from bench.latency import latency
from bench.measure import percentiles
from bench.setup import CODE_ROOT, Target, log, stop, worker_env
from bench.workload import mail_id

RATE = 200.0  # requests per second, half of each call
CONNECTIONS = 32  # at most this many calls in flight: far above what 200/s needs at 20 ms


@dataclass(frozen=True)
class Api:
    host: str
    port: int
    token: str
    pid: int = 0  # the server's, for its CPU per request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(api: Api) -> bool:
    try:
        connection = http.client.HTTPConnection(api.host, api.port, timeout=2)
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False


@contextmanager
def api_process(target: Target, data_dir: Path) -> Iterator[Api]:
    """`quota-worker api` on the bench's services, with a read token of its own."""
    api = Api("127.0.0.1", _free_port(), secrets.token_urlsafe(24))
    env = {**worker_env(target, data_dir), "QUOTA_API_PORT": str(api.port),
           "QUOTA_API_TOKENS": f"bench:read:{api.token}"}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "api"], env=env, cwd=CODE_ROOT,
        start_new_session=True, stdout=(data_dir / "api.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = replace(api, pid=process.pid)
    try:
        deadline = time.monotonic() + 60
        while not _up(api):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"quota-worker api did not become ready; see {data_dir}")
            time.sleep(0.2)
        yield api
    finally:
        stop(process, 30)


def _calls(mails: int, count: int, seed: int = 11) -> list[tuple[str, str]]:
    """(call name, path): service-mail reads and quotes, alternating, on seeded mails."""
    rng = random.Random(seed)
    calls = []
    for n in range(count):
        m = rng.randrange(mails)
        if n % 2 == 0:
            calls.append(("service_mail", f"/v1/service-mails/{mail_id('base', m)}"))
        else:
            limit = rng.randint(1, 60)  # allowed, or refused for one reason or another
            quote = f"/quote?account_id=acc-base-{m}&new_address_limit={limit}"
            calls.append(("quote", f"/v1/service-mails/{mail_id('base', m)}{quote}"))
    return calls


def load(api: Api, mails: int, seconds: float, rate: float = RATE) -> dict[str, Any]:
    """Open loop: call n is due at start + n / rate; its latency runs from then."""
    calls = _calls(mails, int(rate * seconds))
    local = threading.local()
    results: dict[str, list[float]] = {"service_mail": [], "quote": []}
    errors: dict[str, dict[str, int]] = {"service_mail": {}, "quote": {}}
    lock = threading.Lock()

    def get(path: str) -> http.client.HTTPResponse:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(api.host, api.port, timeout=10)
        connection: http.client.HTTPConnection = local.connection
        connection.request("GET", path, headers={"Authorization": f"Bearer {api.token}"})
        return connection.getresponse()

    def call(name: str, path: str, due: float) -> None:
        outcome = "ok"
        try:
            try:
                answer = get(path)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed a keep-alive connection this thread left idle longer
                # than uvicorn keeps one (5 s): as any HTTP client does, a new one, once.
                local.__dict__.pop("connection", None)
                answer = get(path)
            body = answer.read()
            if answer.status != 200 or not json.loads(body):
                outcome = str(answer.status)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            outcome = type(exc).__name__
            local.__dict__.pop("connection", None)
        took = time.monotonic() - due
        with lock:
            if outcome == "ok":
                results[name].append(took)
            else:
                errors[name][outcome] = errors[name].get(outcome, 0) + 1

    server = psutil.Process(api.pid) if api.pid else None
    server_cpu = sum(server.cpu_times()[:2]) if server else 0.0
    psutil.cpu_percent()  # from here: how busy the whole machine is during the load
    start = time.monotonic()
    with ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="api-load") as pool:
        for n, (name, path) in enumerate(calls):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(call, name, path, due)
        sent = time.monotonic() - start
    busy = psutil.cpu_percent()
    if server:
        server_cpu = sum(server.cpu_times()[:2]) - server_cpu
    return {
        "target_rate": rate,
        "sent_rate": round(len(calls) / sent, 1),
        # What explains a slow run: the server's own CPU per call, and whether the machine
        # had any to spare (the worker, the databases and this load share its cores).
        "api_cpu_ms_per_request": round(1000 * server_cpu / len(calls), 2) if server else None,
        "machine_cpu_busy_percent": busy,
        "seconds": round(seconds, 1),
        "calls": {
            name: {**percentiles(results[name]), "errors": sum(errors[name].values()),
                   "error_kinds": errors[name]}
            for name in results
        },
    }  # fmt: skip


def load_beside(
    api: Api, mails: int, seconds: float, work: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The same load from a process of its own while `work` (an order feed through the
    worker) runs here: the API's figures while the worker drains orders, each side with
    its own GIL."""
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1) as pool:
        calls = pool.apply_async(load, (api, mails, seconds))
        feed = work()
        return {**calls.get(timeout=seconds + 120), "beside": feed}


def read_api_phase(
    bench: Any, target: Target, options: Any, feed_rate: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Phase 5: the read API with the worker idle, then beside orders at `feed_rate`."""
    log(f"phase 5/6: the read API at {RATE:g} requests/s for {options.api_seconds:g} s")
    with api_process(target, bench.data_dir) as api:
        idle = load(api, options.mails, options.api_seconds)
        log(f"read API, worker idle: {idle['calls']}")
        log(f"phase 5/6: again, while the worker takes orders at {feed_rate:.0f} messages/s")

        def feed() -> dict[str, Any]:
            return latency(bench, feed_rate, options.api_seconds, 4_000_000, "feed")

        draining = load_beside(api, options.mails, options.api_seconds, feed)
    log(f"read API, worker draining: {draining['calls']}")
    return idle, draining

"""The benchmark: quota-worker against bare Celery moving the same messages, in one run.

Phases, each on the same broker, database and worker layout:
1. baseline: the worker's Celery configuration with no-op tasks (bench/noop.py)
   drains the workload's messages;
2. quota-worker: `quota-worker run` drains the same messages (fresh database);
3. latency: an open-loop producer at 50% and 90% of the rate measured in 2;
   payment published -> `mail.quota.changed` readable on the stream;
4. refusals: a flood of refused messages, then one good one;
5. the read API: `quota-worker api` on the same database under an open-loop
   load of service-mail reads and quotes (bench/api_load.py), with the worker
   idle, then from a process of its own while orders flow at 50% of 2's rate;
6. the database floor: the same transactions through the bus in one process,
   no Celery.

`--history N` and `--prune-pair`: drains on fresh databases between 1 and 2.

With `--batch-max N`, every quota-worker run but the curve's has QUOTA_BATCH_MAX=N; when
N > 1 the baseline drains twice, at prefetch 1 and at the batching worker's prefetch, and
the ratio is against the faster. `--batch-curve 1,2,5` adds, after 6, the drain and the
latency runs on a fresh database for each batch size (bench/batches.py).

Rates come from Celery's own task events (received / succeeded), read the way
Flower reads them, so both runs are measured by the same instrument. The
queues are preloaded while consumption is paused (`cancel_consumer`), so
worker start-up is in neither the time nor the CPU figures.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from celery import Celery
from sqlalchemy import create_engine, text

from bench.api_load import read_api_phase
from bench.batches import baselines, curve, free_port, held, histogram_delta, read_histogram
from bench.history_run import extra_phases
from bench.latency import db_floor, latency
from bench.measure import Drain, TaskEvents, celery_rss_mb, cpu_seconds, peak_rss_mb, server_cpu
from bench.refusals import refusal_flood
from bench.report import table
from bench.scans import Scans
from bench.setup import (
    CODE_ROOT,
    Options,
    Target,
    log,
    machine,
    save,
    seed_mails,
    services,
    slug,
    stop,
    worker_env,
)
from bench.workload import Workload, generate
from events.inbound import INBOUND, QUEUES


class Bench:
    def __init__(self, target: Target, options: Options, data_dir: Path) -> None:
        self.target = target
        self.options = options
        self.data_dir = data_dir
        self.app = Celery("bench-producer", broker=target.broker_url, set_as_current=False)
        self.app.conf.update(broker_connection_retry_on_startup=True, task_serializer="json")
        self.events = TaskEvents(self.app).start()
        self.metrics_port: int | None = None  # the running quota-worker's /metrics
        self.last_batch_sizes: dict[str, Any] | None = None  # of the last drain, if read

    def publish(self, messages: list[Any]) -> None:
        with self.app.producer_or_acquire() as producer:
            for m in messages:
                self.app.send_task(m.name, kwargs=m.payload, queue=INBOUND[m.name].queue,
                                   producer=producer)  # fmt: skip

    def wait_workers(self, count: int, timeout: float = 120) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = self.app.control.ping(timeout=1.0) or []
            names = [name for reply in replies for name in reply]
            if len(names) >= count:
                return names
        raise RuntimeError(f"only some of {count} worker processes answered within {timeout}s")

    def set_consuming(self, names: list[str], on: bool) -> None:
        for queue in QUEUES:
            if on:
                self.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)
            else:
                self.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)

    def drain(self, roots: list[psutil.Process], names: list[str], workload: Workload) -> Drain:
        """Paused workers, preloaded queues, then go: the time and CPU to empty them."""
        self.set_consuming(names, on=False)
        self.app.control.purge()
        log(f"preloading {len(workload.messages)} messages")
        self.publish(workload.messages)
        self.events.reset()
        port = self.metrics_port  # the scrapes are outside the drain's CPU figures
        sizes_before = read_histogram(port) if port else None
        cpu_before, servers_before = cpu_seconds(roots), server_cpu()
        rss_start = celery_rss_mb(roots)
        self.set_consuming(names, on=True)
        total = len(workload.messages)
        last_progress, last_count, rss_warm = time.monotonic(), -1, 0.0
        while True:
            done = self.events.done
            if not rss_warm and done >= total // 5:
                rss_warm = celery_rss_mb(roots)
            if done >= total:
                break
            if done != last_count:
                last_progress, last_count = time.monotonic(), done
            elif time.monotonic() - last_progress > 60:
                raise RuntimeError(self.events.stalled(total))
            time.sleep(0.2)
        cpu = cpu_seconds(roots) - cpu_before
        # A server counts if it worked at least 2% of the drain (not a bystander's idle ticks).
        seconds_so_far = time.time() - (self.events.first_received or time.time())
        servers = {k: round(v - servers_before[k], 2) for k, v in server_cpu().items()
                   if v - servers_before[k] > 0.02 * seconds_so_far}  # fmt: skip
        seconds = self.events.last_succeeded - (self.events.first_received or 0.0)
        sizes_after = read_histogram(port) if port and sizes_before else None
        self.last_batch_sizes = (
            histogram_delta(sizes_before, sizes_after) if sizes_before and sizes_after else None
        )
        return Drain(total, round(seconds, 3), round(total / seconds, 1), round(cpu, 2),
                     peak_rss_mb(roots), rss_start, rss_warm, celery_rss_mb(roots),
                     servers)  # fmt: skip

    def baseline(self, batch_max: int = 1) -> Drain:
        """The no-op drain, holding the prefetch of a batching worker of `batch_max`."""
        layout = self.options
        host = socket.gethostname()
        env = {**worker_env(self.target, self.data_dir), "QUOTA_BATCH_MAX": str(batch_max)}
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench.noop:app", "worker",
                 "--queues", ",".join(QUEUES), "--pool", layout.pool,
                 "--concurrency", str(layout.concurrency),
                 "--hostname", f"noop{i}-{uuid.uuid4().hex[:6]}@{host}",
                 "--loglevel", "WARNING", "--task-events"],
                env=env, start_new_session=True, cwd=CODE_ROOT,
                stdout=(self.data_dir / f"baseline{i}.log").open("wb"), stderr=subprocess.STDOUT,
            )
            for i in range(layout.processes)
        ]  # fmt: skip
        try:
            names = self.wait_workers(layout.processes)
            roots = [psutil.Process(c.pid) for c in children]
            workload = generate("base", self.options.mails, self.options.orders)
            return self.drain(roots, names, workload)
        finally:
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                child.wait(timeout=60)

    @contextmanager
    def quota_worker(
        self, settings: dict[str, str] | None = None
    ) -> Iterator[tuple[psutil.Process, list[str]]]:
        layout = self.options
        port = free_port() if layout.batch_sizes else None
        env = {
            **worker_env(self.target, self.data_dir),
            "QUOTA_BATCH_MAX": str(layout.batch_max),
            # the batch sizes (bench/batches.py)
            **({"QUOTA_METRICS_PORT": str(port)} if port else {}),
            **(settings or {}),
        }
        log_path = self.data_dir / "quota-worker.log"  # every phase's worker, one after another
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run", "--processes", str(layout.processes),
             "--concurrency", str(layout.concurrency), "--pool", layout.pool],
            env=env, start_new_session=True, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
            cwd=CODE_ROOT,
        )  # fmt: skip
        try:
            names = self.wait_workers(layout.processes)
            self.metrics_port = port
            yield psutil.Process(process.pid), names
        finally:
            self.metrics_port = None
            stop(process, 120)

    def outcomes(self) -> dict[str, int]:
        engine = create_engine(self.target.database_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT state, count(*) FROM quota_changes GROUP BY state"))
            found = {str(state): int(n) for state, n in rows}
            reasons = conn.execute(text(
                "SELECT reason, count(*) FROM quota_changes WHERE state = 'rejected' "
                "GROUP BY reason"))  # fmt: skip
            found.update({f"rejected:{r}": int(n) for r, n in reasons})
        engine.dispose()
        return found


def run(
    options: Options,
    database_url: str | None,
    broker_url: str | None,
    redis_url: str | None,
    out: Path | None,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="qb-", dir="/tmp"))
    try:
        with services(database_url, broker_url, redis_url, work) as target:
            log(f"target: {target.label}; {options}")
            bench = Bench(target, options, work)
            try:
                result = phases(bench, target, options)
            finally:
                bench.events.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    echo(table(result))
    log(f"wrote {save(result, out, slug(result['target']))}")
    return result


def phases(bench: Bench, target: Target, options: Options) -> dict[str, Any]:
    bases = baselines(bench, target, options)
    base = bases["baseline"]
    extras = extra_phases(bench, target, options)  # --history, --prune-pair: fresh databases
    log(f"phase 2/6: quota-worker drains the same workload ({options.mails} Service Mails, "
        f"QUOTA_BATCH_MAX={options.batch_max})")  # fmt: skip
    seed_mails(target.database_url, "base", options.mails)
    workload = generate("base", options.mails, options.orders)
    with bench.quota_worker() as (root, names):
        with Scans(target.database_url) as scans:
            quota = bench.drain([root], names, workload)
        batch_sizes = bench.last_batch_sizes
        quota.outcomes = bench.outcomes()
        log(f"quota-worker: {quota.rate} messages/s; outcomes {quota.outcomes}")
        # The drains are measured; from here the stream is. Receiving Celery's task
        # events (four per message) would take CPU from the worker on the same cores.
        bench.events.stop()
        lat = []
        for share in (0.5, 0.9):
            log(f"phase 3/6: latency at {int(share * 100)}% of {quota.rate} messages/s")
            rate = quota.rate * share
            first_mail = 1_000_000 * (2 if share > 0.5 else 1)
            lat.append(
                {"share": share, **latency(bench, rate, options.latency_seconds, first_mail)}
            )
        log(f"phase 4/6: {options.refusals} refused messages, then one good one")
        seed_mails(target.database_url, "flood", 1, first=3_000_000)
        flood = refusal_flood(bench, names, options.refusals, 3_000_000)
        log(f"refusals: {flood}")
        read_api, read_api_draining = read_api_phase(bench, target, options, quota.rate * 0.5)
    log("phase 6/6: database floor (the bus in one process, no Celery)")
    floor = db_floor(bench)
    batch_curve = curve(bench, target, options, base["rate"]) if options.batch_curve else []
    one, batch = bases["baseline_prefetch_1"], bases["baseline_prefetch_batch"]
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "target": target.label,
        "options": asdict(options),
        **bases,
        "quota_worker": {
            **asdict(quota),
            "batch_max": options.batch_max,
            "prefetch": held(target, options.batch_max),
            "batch_sizes": batch_sizes,
        },
        "ratio": round(quota.rate / base["rate"], 3),
        "ratio_prefetch_1": round(quota.rate / one["rate"], 3),
        "ratio_prefetch_batch": round(quota.rate / batch["rate"], 3) if batch else None,
        "orders_per_second": round(options.orders / (quota.seconds or 1.0), 1),
        "cpu_ms_per_order": round(1000 * quota.cpu_seconds / options.orders, 2),
        "baseline_cpu_ms_per_order": round(1000 * base["cpu_seconds"] / options.orders, 2),
        "database_scans": scans.result,
        "latency": lat,
        "refusal_flood": flood,
        "read_api": read_api,
        "read_api_draining": read_api_draining,
        "database_floor": floor,
        "batch_curve": batch_curve,
        **extras,
    }

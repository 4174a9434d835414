"""The benchmark: quota-worker against bare Celery moving the same messages, in one run.

Phases, each on the same broker, database and worker layout:
1. baseline: the worker's Celery configuration with no-op tasks (bench/noop.py)
   drains the workload's messages;
2. quota-worker: `quota-worker run` drains the same messages (fresh database);
3. latency: an open-loop producer at 50% and 90% of the rate measured in 2;
   payment published -> `mail.quota.changed` readable on the stream;
4. the database floor: the same transactions through the bus in one process,
   no Celery.

Rates come from Celery's own task events (received / succeeded), read the way
Flower reads them, so both runs are measured by the same instrument. The
queues are preloaded while consumption is paused (`cancel_consumer`), so
worker start-up is in neither the time nor the CPU figures.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis
from celery import Celery
from sqlalchemy import create_engine, insert, text

import worker
from bench.refusals import refusal_flood
from bench.scans import Scans, summary
from bench.workload import START_LIMIT, Workload, generate, mail_id
from events.inbound import INBOUND, QUEUES
from worker.adapters.migrate import scratch_database

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Target:
    database_url: str
    broker_url: str
    redis_url: str
    stream: str
    label: str


@dataclass(frozen=True)
class Options:
    mails: int
    orders: int
    processes: int
    concurrency: int
    pool: str
    latency_seconds: float
    floor_orders: int
    refusals: int = 20_000


@dataclass
class Drain:
    messages: int
    seconds: float
    rate: float
    cpu_seconds: float
    peak_rss_mb: list[float]
    rss_mb_start: float = 0.0
    rss_mb_warm: float = 0.0  # after a fifth of the messages: caches and pools filled
    rss_mb_end: float = 0.0
    server_cpu_seconds: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the services --------------------------------------------------------------------------


@contextmanager
def database(url: str | None, work: Path, tag: str) -> Iterator[str]:
    """A fresh, migrated database: an SQLite file, or a new database on a PostgreSQL server."""
    with scratch_database(url, work / f"bench-{tag}.sqlite3", f"quota_bench_{tag}") as fresh:
        yield fresh


def seed_mails(url: str, tag: str, count: int, first: int = 0, analyze: bool = True) -> None:
    """Service Mails straight into the table: set-up, not part of what is measured."""
    from worker.adapters.tables import service_mails

    engine = create_engine(url)
    now = datetime.now(UTC)
    rows = [
        {"id": mail_id(tag, n), "account_id": f"acc-{tag}-{n}", "plan": "premium",
         "address_limit": START_LIMIT, "ksuite_id": None, "version": 0, "updated_at": now}
        for n in range(first, first + count)
    ]  # fmt: skip
    with engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(service_mails), rows[start : start + 5000])
    # Statistics as a production table has them: without, the planner takes a
    # freshly filled table for empty until autovacuum's next visit.
    if analyze:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


# Worker processes start in the directory of the code this process imported: `python -m`
# puts the working directory first on sys.path, so a benchmark of another checkout
# (PYTHONPATH=/path/to/worktree) would otherwise run the current directory's worker.
CODE_ROOT = Path(worker.__file__).resolve().parents[1]


def worker_env(target: Target, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUOTA_")}
    env.update(
        QUOTA_DATABASE_URL=target.database_url,
        QUOTA_BROKER_URL=target.broker_url,
        QUOTA_REDIS_URL=target.redis_url,
        QUOTA_EVENTS_STREAM=target.stream,
        QUOTA_DATA_DIR=str(data_dir),
        QUOTA_LOG_LEVEL="WARNING",
        QUOTA_LOG_FORMAT="json",
        QUOTA_SWEEP_INTERVAL_SECONDS="3600",
    )
    return env


# --- measuring -----------------------------------------------------------------------------


class TaskEvents:
    """Counts Celery's task events (the same stream Flower reads) in a thread."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.received = 0
        self.succeeded = 0
        self.failed = 0
        self.first_received: float | None = None
        self.last_succeeded = 0.0
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self._receiver: Any = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TaskEvents:
        self._thread.start()
        self.ready.wait(30)
        return self

    def _run(self) -> None:
        def received(event: dict[str, Any]) -> None:
            with self.lock:
                self.received += 1
                if self.first_received is None:
                    self.first_received = event["timestamp"]

        def succeeded(event: dict[str, Any]) -> None:
            with self.lock:
                self.succeeded += 1
                self.last_succeeded = max(self.last_succeeded, event["timestamp"])

        def failed(event: dict[str, Any]) -> None:
            with self.lock:
                self.failed += 1

        with self.app.connection() as conn:
            self._receiver = self.app.events.Receiver(
                conn,
                handlers={"task-received": received, "task-succeeded": succeeded,
                          "task-failed": failed},
            )  # fmt: skip
            self.ready.set()
            while not self._stopping.is_set():
                try:
                    self._receiver.capture(limit=None, timeout=1.0, wakeup=False)
                except TimeoutError:  # no event for a second: look at the stop flag
                    continue

    def reset(self) -> None:
        with self.lock:
            self.received = self.succeeded = self.failed = 0
            self.first_received, self.last_succeeded = None, 0.0

    def stop(self) -> None:
        self._stopping.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=10)


def tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(roots: list[psutil.Process]) -> float:
    """CPU of the process trees, counting pool children that already exited (a prefork
    child is replaced after worker_max_tasks_per_child tasks; its parent reaped it)."""
    total = 0.0
    for root in roots:
        for p in tree(root):
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.NoSuchProcess:
                continue
    return total


SERVERS = ("postgres", "redis-server", "beam.smp")  # beam.smp: RabbitMQ


def server_cpu() -> dict[str, float]:
    """CPU seconds used so far by the local database and broker servers (same machine)."""
    used = dict.fromkeys(SERVERS, 0.0)
    for p in psutil.process_iter(["name", "cpu_times"]):
        name = p.info["name"] or ""
        for server in SERVERS:
            if name.startswith(server) and p.info["cpu_times"] is not None:
                used[server] += p.info["cpu_times"].user + p.info["cpu_times"].system
    return used


def _used_since(before: dict[str, float]) -> dict[str, float]:
    now = server_cpu()
    return {k: now[k] - before[k] for k in now}


def celery_rss_mb(roots: list[psutil.Process]) -> float:
    """Resident memory of all Celery worker processes now (parents and pool children)."""
    total = 0
    for root in roots:
        for p in tree(root):
            try:
                if "celery" in " ".join(p.cmdline()):
                    total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    return round(total / 2**20, 1)


def peak_rss_mb(roots: list[psutil.Process]) -> list[float]:
    """VmHWM (peak resident set) of every Celery worker process, parents and pool children."""
    peaks = []
    for root in roots:
        for p in tree(root):
            try:
                if "celery" not in " ".join(p.cmdline()):
                    continue
                status = Path(f"/proc/{p.pid}/status").read_text()
            except (psutil.NoSuchProcess, FileNotFoundError, PermissionError):
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(round(int(line.split()[1]) / 1024, 1))
    return peaks


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"n": len(ordered), "p50_ms": at(0.5), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 1)}  # fmt: skip


# --- phases --------------------------------------------------------------------------------


class Bench:
    def __init__(self, target: Target, options: Options, data_dir: Path) -> None:
        self.target = target
        self.options = options
        self.data_dir = data_dir
        self.app = Celery("bench-producer", broker=target.broker_url, set_as_current=False)
        self.app.conf.update(broker_connection_retry_on_startup=True, task_serializer="json")
        self.events = TaskEvents(self.app).start()

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
        cpu_before, servers_before = cpu_seconds(roots), server_cpu()
        rss_start = celery_rss_mb(roots)
        self.set_consuming(names, on=True)
        total = len(workload.messages)
        last_progress, last_count, rss_warm = time.monotonic(), -1, 0.0
        while True:
            done = self.events.succeeded + self.events.failed
            if not rss_warm and done >= total // 5:
                rss_warm = celery_rss_mb(roots)
            if done >= total:
                break
            if done != last_count:
                last_progress, last_count = time.monotonic(), done
            elif time.monotonic() - last_progress > 60:
                raise RuntimeError(f"no progress for 60 s at {done} of {total} messages")
            time.sleep(0.2)
        cpu = cpu_seconds(roots) - cpu_before
        # A server counts if it worked at least 2% of the drain (not a bystander's idle ticks).
        seconds_so_far = time.time() - (self.events.first_received or time.time())
        servers = {k: round(v - servers_before[k], 2) for k, v in server_cpu().items()
                   if v - servers_before[k] > 0.02 * seconds_so_far}  # fmt: skip
        seconds = self.events.last_succeeded - (self.events.first_received or 0.0)
        return Drain(total, round(seconds, 3), round(total / seconds, 1), round(cpu, 2),
                     peak_rss_mb(roots), rss_start, rss_warm, celery_rss_mb(roots),
                     servers)  # fmt: skip

    def baseline(self) -> Drain:
        layout = self.options
        host = socket.gethostname()
        env = worker_env(self.target, self.data_dir)
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
        env = {**worker_env(self.target, self.data_dir), **(settings or {})}
        log_path = self.data_dir / "quota-worker.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run", "--processes", str(layout.processes),
             "--concurrency", str(layout.concurrency), "--pool", layout.pool],
            env=env, start_new_session=True, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
            cwd=CODE_ROOT,
        )  # fmt: skip
        try:
            names = self.wait_workers(layout.processes)
            yield psutil.Process(process.pid), names
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()

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

    def latency(self, rate: float, seconds: float, first_mail: int) -> dict[str, Any]:
        """Open loop: messages at a fixed rate, whatever the worker does; payment -> event."""
        orders = max(10, int(rate * seconds / 1.9))
        tag = f"lat{int(rate)}"
        seed_mails(self.target.database_url, "bench", orders, first=first_mail)
        workload = generate(tag, orders, orders, seed=int(rate), first_mail=first_mail,
                            mail_tag="bench")  # fmt: skip
        measured = workload.paid_after()
        client = redis.Redis.from_url(self.target.redis_url)
        last_id = client.xinfo_stream(self.target.stream)["last-generated-id"]
        paid_at: dict[str, float] = {}
        seen_at: dict[str, float] = {}
        stop = threading.Event()

        def read() -> None:
            nonlocal last_id
            reader = redis.Redis.from_url(self.target.redis_url)
            while not stop.is_set():
                reply: Any = reader.xread({self.target.stream: last_id}, count=1000, block=200)
                now = time.time()
                for _key, entries in reply or []:
                    for entry_id, fields in entries:
                        last_id = entry_id
                        if fields[b"type"] != b"mail.quota.changed":
                            continue
                        order = json.loads(fields[b"event"])["data"]["order_id"]
                        seen_at.setdefault(order, now)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        interval = 1.0 / rate
        start, cpu = time.monotonic(), time.process_time()
        with self.app.producer_or_acquire() as producer:
            for n, m in enumerate(workload.messages):
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.app.send_task(m.name, kwargs=m.payload, queue=INBOUND[m.name].queue,
                                   producer=producer)  # fmt: skip
                if m.payment:
                    paid_at.setdefault(str(m.payload["order_id"]), time.time())
        sent = time.monotonic()
        sent_rate = len(workload.messages) / (sent - start)
        deadline = sent + 60
        while time.monotonic() < deadline and not measured <= set(seen_at):
            time.sleep(0.1)
        # How long the worker took, after the last send, to catch up: well under a second
        # unless the run saturated it (the producer and reader share the machine's cores).
        behind = time.monotonic() - sent
        cpu = time.process_time() - cpu  # this process: the producer and the stream reader
        stop.set()
        reader.join()
        delays = [seen_at[o] - paid_at[o] for o in measured if o in seen_at and o in paid_at]
        return {"target_rate": round(rate, 1), "sent_rate": round(sent_rate, 1),
                "caught_up_after_s": round(behind, 2),
                "producer_cpu_ms_per_message": round(1000 * cpu / len(workload.messages), 3),
                "missing": len(measured - set(seen_at)), **percentiles(delays)}  # fmt: skip

    def db_floor(self) -> dict[str, Any]:
        """The same transactions through the bus, in this process: no broker, no Celery."""
        from worker.bootstrap import build
        from worker.settings import Settings

        orders = self.options.floor_orders
        first = 10_000_000
        seed_mails(self.target.database_url, "floor", orders, first=first)
        workload = generate("floor", orders, orders, seed=3, first_mail=first)
        settings = Settings(database_url=self.target.database_url, redis_url=self.target.redis_url,
                            broker_url=self.target.broker_url,
                            events_stream=self.target.stream + ".floor")  # fmt: skip
        container = build(settings)
        cpu, servers = time.process_time(), server_cpu()
        seconds = through_bus(container, workload, "floor")
        cpu, servers = time.process_time() - cpu, _used_since(servers)
        container.database.dispose()
        messages = len(workload.messages)
        # Where a message's cost goes without Celery: this process (validation, domain,
        # SQLAlchemy, psycopg) and the database server.
        return {"messages": messages, "seconds": round(seconds, 3),
                "rate": round(messages / seconds, 1),
                "cpu_ms_per_message": round(1000 * cpu / messages, 3),
                "server_cpu_ms_per_message": {k: round(1000 * v / messages, 3)
                                              for k, v in servers.items() if v > 0}}  # fmt: skip


def through_bus(container: Any, workload: Workload, prefix: str) -> float:
    """Every message of `workload` through the bus in this process, as a task would hand
    it over (validated, translated); returns the seconds the bus took."""
    from events.translate import to_command

    commands = [(to_command(INBOUND[m.name].model.model_validate(m.payload)), m.name)
                for m in workload.messages]  # fmt: skip
    start = time.perf_counter()
    for n, (command, name) in enumerate(commands):
        container.bus.handle(command, message_id=f"{prefix}-{n}", task=name)
    return time.perf_counter() - start


# --- the run -------------------------------------------------------------------------------


@contextmanager
def services(database_url: str | None, broker_url: str | None, redis_url: str | None,
             work: Path) -> Iterator[Target]:  # fmt: skip
    from worker.adapters.embedded import EmbeddedRedis

    embedded = None
    if broker_url is None or redis_url is None:
        embedded = EmbeddedRedis(work / "redis").start()
    tag = uuid.uuid4().hex[:8]
    try:
        with database(database_url, work, tag) as db_url:
            broker = broker_url or (embedded.broker_url if embedded else "")
            stream_redis = redis_url or (embedded.redis_url if embedded else "")
            label = (f"{'PostgreSQL' if db_url.startswith('postgresql') else 'SQLite'} + "
                     f"{'RabbitMQ' if broker.startswith('amqp') else 'Redis'}"
                     f"{' (embedded)' if embedded else ''}")  # fmt: skip
            yield Target(db_url, broker, stream_redis, f"quota.bench.{tag}", label)
    finally:
        if embedded is not None:
            embedded.stop()


def machine() -> dict[str, Any]:
    return {"host": socket.gethostname(), "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


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
    path = out or RESULTS / f"{result['when'][:19].replace(':', '')}-{slug(result['target'])}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {path}")
    return result


def phases(bench: Bench, target: Target, options: Options) -> dict[str, Any]:
    log("phase 1/5: baseline (no-op tasks, same configuration and layout)")
    base = bench.baseline()
    log(f"baseline: {base.rate} messages/s")
    log(f"phase 2/5: quota-worker drains the same workload ({options.mails} Service Mails)")
    seed_mails(target.database_url, "base", options.mails)
    workload = generate("base", options.mails, options.orders)
    with bench.quota_worker() as (root, names):
        with Scans(target.database_url) as scans:
            quota = bench.drain([root], names, workload)
        quota.outcomes = bench.outcomes()
        log(f"quota-worker: {quota.rate} messages/s; outcomes {quota.outcomes}")
        # The drains are measured; from here the stream is. Receiving Celery's task
        # events (four per message) would take CPU from the worker on the same cores.
        bench.events.stop()
        lat = []
        for share in (0.5, 0.9):
            log(f"phase 3/5: latency at {int(share * 100)}% of {quota.rate} messages/s")
            rate = quota.rate * share
            first_mail = 1_000_000 * (2 if share > 0.5 else 1)
            lat.append({"share": share, **bench.latency(rate, options.latency_seconds, first_mail)})
        log(f"phase 4/5: {options.refusals} refused messages, then one good one")
        seed_mails(target.database_url, "flood", 1, first=3_000_000)
        flood = refusal_flood(bench, names, options.refusals, 3_000_000)
        log(f"refusals: {flood}")
    log("phase 5/5: database floor (the bus in one process, no Celery)")
    floor = bench.db_floor()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "target": target.label,
        "options": asdict(options),
        "baseline": asdict(base),
        "quota_worker": asdict(quota),
        "ratio": round(quota.rate / base.rate, 3),
        "orders_per_second": round(options.orders / (quota.seconds or 1.0), 1),
        "cpu_ms_per_order": round(1000 * quota.cpu_seconds / options.orders, 2),
        "baseline_cpu_ms_per_order": round(1000 * base.cpu_seconds / options.orders, 2),
        "database_scans": scans.result,
        "latency": lat,
        "refusal_flood": flood,
        "database_floor": floor,
    }


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")


def _saturated(lat: dict[str, Any]) -> str:
    behind = lat.get("caught_up_after_s", 0.0)
    return f"; SATURATED: caught up {behind} s after the last send" if behind >= 0.5 else ""


def _per_order(drain: dict[str, Any], orders: int) -> str:
    return " + ".join(
        f"{1000 * v / orders:.2f}" for _k, v in sorted(drain["server_cpu_seconds"].items())
    )


def table(r: dict[str, Any]) -> str:
    base, quota = r["baseline"], r["quota_worker"]
    o = r["options"]
    lines = [
        f"quota-worker benchmark: {r['target']}; {o['processes']} process(es) x "
        f"{o['pool']} {o['concurrency']}; {o['mails']} Service Mails, {o['orders']} orders",
        "",
        "| figure | no-op baseline | quota-worker |",
        "| --- | ---: | ---: |",
        f"| messages | {base['messages']} | {quota['messages']} |",
        f"| messages/s | {base['rate']} | {quota['rate']} |",
        f"| ratio (quota / baseline) | | **{r['ratio']}** |",
        f"| orders completed/s | | {r['orders_per_second']} |",
        f"| CPU ms per order (all worker processes) | {r['baseline_cpu_ms_per_order']} | "
        f"{r['cpu_ms_per_order']} |",
        f"| server CPU ms per order ({', '.join(sorted(quota['server_cpu_seconds']))}) | "
        f"{_per_order(base, o['orders'])} | {_per_order(quota, o['orders'])} |",
        f"| RSS of all worker processes, start → after 1/5 → end of drain, MB | "
        f"{base['rss_mb_start']} → {base['rss_mb_warm']} → {base['rss_mb_end']} | "
        f"{quota['rss_mb_start']} → {quota['rss_mb_warm']} → {quota['rss_mb_end']} |",
        f"| peak RSS per process, MB | {max(base['peak_rss_mb'], default=0)} | "
        f"{max(quota['peak_rss_mb'], default=0)} |",
    ]
    for lat in r["latency"]:
        lines.append(
            f"| payment → event at {int(lat['share'] * 100)}% of peak "
            f"({lat['sent_rate']} msg/s sent) | | p50 {lat.get('p50_ms')} / p95 "
            f"{lat.get('p95_ms')} / p99 {lat.get('p99_ms')} / max {lat.get('max_ms')} ms"
            f"{'' if not lat['missing'] else ', ' + str(lat['missing']) + ' missing'}"
            f"; producer + reader {lat.get('producer_cpu_ms_per_message')} CPU ms/message"
            f"{_saturated(lat)} |"
        )
    lines.append(f"| database reads of the drain | | "
                 f"{summary(r.get('database_scans'), quota['messages'])} |")  # fmt: skip
    flood = r.get("refusal_flood")
    if flood:
        lines.append(
            f"| {flood['refused']:,} refused messages, then one good one: time to the good "
            f"one's event | | {flood['seconds_to_good_event']} s ({flood['refused_per_second']} "
            f"refused/s, {flood['dead_lettered']:,} dead letters; valid messages drained at "
            f"{quota['rate']}/s) |"
        )
    floor = r["database_floor"]
    servers = ", ".join(f"{k} {v}" for k, v in sorted(floor["server_cpu_ms_per_message"].items()))
    lines.append(f"| database floor (bus in one process, no Celery), messages/s | | "
                 f"{floor['rate']} (CPU ms per message: bench process "
                 f"{floor['cpu_ms_per_message']}; {servers or 'no server'}) |")  # fmt: skip
    lines.append(f"| outcomes | | {quota['outcomes']} |")
    return "\n".join(lines)

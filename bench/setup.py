"""What a benchmark run stands on: its services (a fresh database, the brokers, the
stream), the Service Mails it seeds, the workers' environment, and where results go."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, insert, text

import worker
from bench.workload import START_LIMIT, mail_id
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
    api_seconds: float = 20.0
    history: int = 0  # past changes of the history-size row (bench/history_run.py); 0: none
    prune_pair: bool = False  # the drain with pruning idle, then on short retentions
    batch_max: int = 1  # QUOTA_BATCH_MAX of every quota-worker drain but the curve's
    batch_curve: tuple[int, ...] = ()  # the batch-size curve's sizes (bench/batches.py)
    batch_sizes: bool = True  # quota-worker runs serve their metrics: the batch sizes


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (a clean stop), then SIGKILL if it has not ended within `timeout`."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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


def save(result: dict[str, Any], out: Path | None, name: str) -> Path:
    """The result as JSON, at `out` or under bench/results/ named by its time and `name`."""
    path = out or RESULTS / f"{result['when'][:19].replace(':', '')}-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")

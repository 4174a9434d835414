"""The soak: the benchmark's workload through the real worker, continuously, with short
retentions so that several retention periods pass in one run; samples of everything
that must stay bounded, and a verdict on whether it did.

`quota-worker bench --soak [--minutes N] [--quick] --out FILE`. After warm-up (the first
third), every bounded figure must peak in the last third within 20% of its peak in the
middle third, and the rate must hold; the history tables (changes, transitions,
payments, limits) grow, by the bytes per order the result states.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis
from sqlalchemy import create_engine, func, select, text

from bench.measure import tree
from bench.run import Bench
from bench.setup import Options, Target, log, machine, save, seed_mails, services
from bench.workload import generate
from events.inbound import INBOUND

BOUNDED = (
    "stream_length",
    "outbox_rows",
    "processed_rows",
    "redis_used_memory_bytes",
    "worker_rss_bytes",
)
CHUNK_ORDERS = 200  # orders per chunk, each chunk on Service Mails of its own


@dataclass(frozen=True)
class SoakOptions:
    minutes: float
    rate: float  # messages per second, open loop
    sample_seconds: float
    retention_seconds: float


def soak_options(minutes: float | None, quick: bool) -> SoakOptions:
    minutes = minutes or (3.0 if quick else 30.0)
    # Several retention periods in the run: a sixth of it (at least 20 s).
    return SoakOptions(
        minutes, 80.0 if quick else 120.0, 5.0 if quick else 15.0, max(20.0, minutes * 60 / 6)
    )


class Producer(threading.Thread):
    """Sends the workload at a fixed rate, chunk after chunk, each on fresh Service Mails."""

    def __init__(self, bench: Bench, target: Target, rate: float) -> None:
        super().__init__(daemon=True, name="soak-producer")
        self.bench, self.target, self.rate = bench, target, rate
        self.stop = threading.Event()
        self.orders = 0

    def run(self) -> None:
        start, sent, chunk = time.monotonic(), 0, 0
        with self.bench.app.producer_or_acquire() as producer:
            while not self.stop.is_set():
                tag = f"soak{chunk}"
                seed_mails(self.target.database_url, tag, CHUNK_ORDERS, analyze=False)
                for m in generate(tag, CHUNK_ORDERS, CHUNK_ORDERS, seed=chunk).messages:
                    delay = start + sent / self.rate - time.monotonic()
                    if delay > 0 and self.stop.wait(delay):
                        return
                    self.bench.app.send_task(
                        m.name, kwargs=m.payload, queue=INBOUND[m.name].queue, producer=producer
                    )
                    sent += 1
                self.orders += CHUNK_ORDERS
                chunk += 1


class Sampler:
    def __init__(self, bench: Bench, target: Target, root: psutil.Process) -> None:
        self.bench, self.target, self.root = bench, target, root
        self.engine = create_engine(target.database_url)
        self.redis = redis.Redis.from_url(target.redis_url)
        self.samples: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def sample(self) -> dict[str, Any]:
        from worker.adapters import tables as t

        done = self.bench.events.done
        now = time.monotonic() - self.started
        last = self.samples[-1] if self.samples else {"t": 0.0, "messages": 0}
        with self.engine.connect() as conn:
            outbox = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
            processed = conn.execute(
                select(func.count()).select_from(t.processed_messages)
            ).scalar_one()
            size = _database_bytes(conn, self.target.database_url)
        row = {
            "t": round(now, 1),
            "messages": done,
            "messages_per_second": round((done - last["messages"]) / max(now - last["t"], 1e-6), 1),
            "stream_length": int(self.redis.xlen(self.target.stream)),
            "redis_used_memory_bytes": int(self.redis.info("memory")["used_memory"]),
            "outbox_rows": int(outbox),
            "processed_rows": int(processed),
            "worker_rss_bytes": sum(p.memory_info().rss for p in tree(self.root)),
            "database_bytes": size,
        }
        self.samples.append(row)
        return row


def _database_bytes(conn: Any, url: str) -> int:
    if url.startswith("postgresql"):
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    path = Path(url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def verdict(samples: list[dict[str, Any]], orders: int) -> dict[str, Any]:
    """Flat after warm-up (the first third): each bounded figure's peak in the last third
    at most 20% above its peak in the middle third (peaks, since pruning saws them; a
    small absolute slack for figures near zero); the rate of the last third within 20% of
    the middle third's; the database's growth per order sent after warm-up."""
    thirds = [samples[len(samples) * i // 3 : len(samples) * (i + 1) // 3] for i in range(3)]
    middle, last = thirds[1], thirds[2]
    figures = {}
    for name in BOUNDED:
        mid, end = max(x[name] for x in middle), max(x[name] for x in last)
        counted = name.endswith("rows") or name == "stream_length"
        flat = end <= mid + max(0.2 * mid, 200 if counted else 0)
        figures[name] = {"mid": mid, "end": end, "flat": flat}
    rates = [sum(x["messages_per_second"] for x in part) / max(len(part), 1) for part in thirds]
    warm, end_sample = middle[0], last[-1]
    sent_after = (end_sample["messages"] - warm["messages"]) / max(end_sample["messages"], 1)
    grown = end_sample["database_bytes"] - warm["database_bytes"]
    holds = rates[2] >= 0.8 * rates[1]
    return {
        "figures": figures,
        "rate_middle_third": round(rates[1], 1),
        "rate_last_third": round(rates[2], 1),
        "rate_holds": holds,
        "database_bytes_per_order": round(grown / max(1.0, orders * sent_after)),
        "flat": all(f["flat"] for f in figures.values()) and holds,
    }


def soak(
    options: Options,
    soak_opts: SoakOptions,
    database_url: str | None,
    broker_url: str | None,
    redis_url: str | None,
    out: Path | None,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="qs-", dir="/tmp"))
    try:
        with services(database_url, broker_url, redis_url, work) as target:
            result = _run(Bench(target, options, work), target, options, soak_opts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    echo(_table(result))
    path = save(result, out, "soak")
    log(f"wrote {path} and {plot(result, path.with_suffix('.png'))}")
    return result


def plot(result: dict[str, Any], target: Path) -> Path:
    """The samples as `status --plot` draws its hour: rate, the bounded figures, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [x["t"] / 60 for x in samples]
    figure, (rate, rows, memory) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    run = result["soak"]
    figure.suptitle(f"soak: {result['target']}, {run['orders_sent']} orders, "
                    f"retentions {run['retention_seconds']:g} s")  # fmt: skip
    rate.plot(minutes, [x["messages_per_second"] for x in samples], ".-")
    rate.set_ylabel("messages/s")
    for name in ("stream_length", "outbox_rows", "processed_rows"):
        rows.plot(minutes, [x[name] for x in samples], ".-", label=name)
    rows.set_ylabel("entries, rows")
    rows.legend(loc="upper left")
    for name in ("redis_used_memory_bytes", "worker_rss_bytes", "database_bytes"):
        memory.plot(minutes, [x[name] / 2**20 for x in samples], ".-", label=name)
    memory.set_ylabel("MiB (log)")
    memory.set_yscale("log")
    memory.set_xlabel("minutes")
    memory.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(target, dpi=80)
    plt.close(figure)
    return target


def _run(bench: Bench, target: Target, options: Options, s: SoakOptions) -> dict[str, Any]:
    retention = str(s.retention_seconds)
    env = {
        "QUOTA_STREAM_RETENTION_SECONDS": retention,
        "QUOTA_OUTBOX_RETENTION_SECONDS": retention,
        "QUOTA_DEDUP_RETENTION_SECONDS": retention,
        "QUOTA_SWEEP_INTERVAL_SECONDS": "2",
    }
    log(f"soak on {target.label}: {s.minutes} min at {s.rate} messages/s, retentions {retention} s")
    try:
        with bench.quota_worker(env) as (root, _names):
            sampler, producer = Sampler(bench, target, root), Producer(bench, target, s.rate)
            producer.start()
            deadline = time.monotonic() + s.minutes * 60
            while time.monotonic() < deadline:
                time.sleep(min(s.sample_seconds, max(0.0, deadline - time.monotonic())))
                row = sampler.sample()
                log(
                    f"t={row['t']:.0f}s messages={row['messages']} "
                    f"({row['messages_per_second']}/s) stream={row['stream_length']} "
                    f"outbox={row['outbox_rows']} processed={row['processed_rows']} "
                    f"rss={row['worker_rss_bytes'] // 2**20} MiB"
                )
            producer.stop.set()
            producer.join(timeout=30)
    finally:
        bench.events.stop()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "target": target.label,
        "soak": {
            "minutes": s.minutes,
            "rate": s.rate,
            "retention_seconds": s.retention_seconds,
            "orders_sent": producer.orders,
        },
        "samples": sampler.samples,
        "verdict": verdict(sampler.samples, producer.orders),
    }


def _table(result: dict[str, Any]) -> str:
    v = result["verdict"]
    run = result["soak"]
    lines = [
        f"soak: {result['target']}, {run['minutes']} min, "
        f"{run['orders_sent']} orders, retentions {run['retention_seconds']} s",
        "| figure | peak, middle third | peak, last third | flat |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [
        f"| {k} | {f['mid']} | {f['end']} | {'yes' if f['flat'] else '**no**'} |"
        for k, f in v["figures"].items()
    ]
    lines.append(
        f"rate: middle third {v['rate_middle_third']}/s, last third "
        f"{v['rate_last_third']}/s ({'holds' if v['rate_holds'] else '**falls**'}); "
        f"database grows {v['database_bytes_per_order']} bytes per order"
    )
    return "\n".join(lines)

"""The benchmark's batching figures (issue 18, "Measure"): the fair baseline, the
batch-size curve and the batch sizes a drain observed.

- The fair baseline: with `--batch-max N` above 1 the batching worker holds N
  messages per pool process unacknowledged (worker/entrypoints/app.py `prefetch`).
  The no-op baseline drains twice, at prefetch 1 and at that prefetch (bench/noop.py
  reads QUOTA_BATCH_MAX), and the headline ratio is against the faster of the two.
- The batch-size curve (`--batch-curve 1,2,5,...`): for each size, the main drain on a
  fresh database with QUOTA_BATCH_MAX=size, then payment -> event latency at 50% and
  90% of that drain's rate, as the main phases do.
- Batch sizes: `quota-worker run` serves its Prometheus metrics on a free port during
  the benchmark's drains; the `quota_batch_size` histogram is read before and after a
  drain, and the difference is the drain's batches.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, replace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import make_url

from bench.latency import latency
from bench.scans import Scans
from bench.setup import Options, Target, log, seed_mails
from bench.workload import generate
from worker.adapters.migrate import scratch_database
from worker.entrypoints.app import prefetch
from worker.settings import Settings

LIMIT = 100  # QUOTA_BATCH_MAX's own bound (worker/settings.py)
HISTOGRAM = "quota_batch_size"


def parse_sizes(text: str) -> tuple[int, ...]:
    """`1,2,5` as (1, 2, 5): each size once, in the order given, each within 1..LIMIT."""
    sizes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            size = int(part)
        except ValueError:
            raise ValueError(f"not a whole number: {part!r}") from None
        if not 1 <= size <= LIMIT:
            raise ValueError(f"a batch size is between 1 and {LIMIT}, not {size}")
        if size not in sizes:
            sizes.append(size)
    if not sizes:
        raise ValueError("no batch size given (for instance 1,2,5,10,20,50)")
    return tuple(sizes)


def faster_baseline(
    prefetch_1: dict[str, Any], prefetch_batch: dict[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The baseline the ratio is against: the faster of the two (prefetch 1 on a tie)."""
    if prefetch_batch is not None and prefetch_batch["rate"] > prefetch_1["rate"]:
        return "prefetch_batch", prefetch_batch
    return "prefetch_1", prefetch_1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_histogram(text: str, name: str = HISTOGRAM) -> dict[str, Any]:
    """A Prometheus histogram from an exposition: its cumulative bucket counts (by upper
    bound, as written: "1", "2", ..., "+Inf"), count and sum, summed over label sets."""
    buckets: dict[str, float] = {}
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                le = str(sample.labels["le"])
                le = le[:-2] if le.endswith(".0") else le
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name == f"{name}_count":
                count += sample.value
            elif sample.name == f"{name}_sum":
                total += sample.value
    return {"buckets": buckets, "count": count, "sum": total}


def histogram_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What was observed between two readings: batches, messages in them, the mean size,
    and batches per size range ("2-5": more than 2, at most 5; the bounds of the
    histogram's buckets)."""
    batches = int(after["count"] - before["count"])
    messages = round(after["sum"] - before["sum"])
    ranges: dict[str, int] = {}
    previous_bound, previous_count = "0", 0
    for le, cumulative in after["buckets"].items():
        count = int(cumulative - before["buckets"].get(le, 0.0))
        n = count - previous_count
        if n:
            low = int(float(previous_bound)) + 1
            key = le if le != "+Inf" and str(low) == le else f"{low}-{le}"
            ranges[key.replace("-+Inf", "+")] = n
        previous_bound, previous_count = le, count
    return {"batches": batches, "messages": messages,
            "mean": round(messages / batches, 2) if batches else None,
            "sizes": ranges}  # fmt: skip


def read_histogram(port: int) -> dict[str, Any] | None:
    """The worker's batch-size histogram now, or None if it could not be read."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            return parse_histogram(reply.read().decode())
    except OSError as exc:
        log(f"batch sizes not read from the worker's metrics: {exc}")
        return None


def sizes_summary(sizes: dict[str, Any] | None) -> str:
    if not sizes:
        return "not measured"
    if not sizes["batches"]:
        return "no batch (every message alone)"
    spread = ", ".join(f"{k}: {v}" for k, v in sizes["sizes"].items())
    return f"{sizes['batches']} batches, mean {sizes['mean']} ({spread})"


def curve_point(
    bench: Any, target: Target, options: Options, size: int, base_rate: float
) -> dict[str, Any]:
    """The main drain on a fresh database with QUOTA_BATCH_MAX=size, then the latency at
    50% and 90% of its rate, with the same worker."""
    from bench.measure import TaskEvents

    label = f"curve{size}"
    name = f"{make_url(target.database_url).database or 'x'}_{label}"[:60]
    with scratch_database(target.database_url, bench.data_dir / f"bench-{label}.sqlite3",
                          name) as url:  # fmt: skip
        seed_mails(url, "base", options.mails)
        workload = generate("base", options.mails, options.orders)
        own = bench.target
        bench.target = replace(target, database_url=url)
        try:
            with bench.quota_worker({"QUOTA_BATCH_MAX": str(size)}) as (root, names):
                bench.events = TaskEvents(bench.app).start()  # the drain counts task events
                # As the main drain: analyzed as autovacuum would (without it the planner
                # keeps an empty database's estimates), and its scans counted.
                with Scans(url) as scans:
                    drain = bench.drain([root], names, workload)
                drain.outcomes = bench.outcomes()
                batch_sizes = bench.last_batch_sizes
                bench.events.stop()  # not during the latency runs (as in the main phases)
                log(f"batch curve, size {size}: {drain.rate} messages/s; "
                    f"{sizes_summary(batch_sizes)}")  # fmt: skip
                lat = []
                for share in (0.5, 0.9):
                    log(f"batch curve, size {size}: latency at {int(share * 100)}% of "
                        f"{drain.rate} messages/s")  # fmt: skip
                    first_mail = 1_000_000 * (2 if share > 0.5 else 1)
                    measured = latency(bench, drain.rate * share, options.latency_seconds,
                                       first_mail)  # fmt: skip
                    lat.append({"share": share, **measured})
        finally:
            bench.target = own
    messages = max(drain.messages, 1)
    return {
        "batch_max": size,
        "drain": {**asdict(drain), "batch_sizes": batch_sizes},
        "ratio": round(drain.rate / base_rate, 3) if base_rate else None,
        "worker_cpu_ms_per_message": round(1000 * drain.cpu_seconds / messages, 3),
        "server_cpu_ms_per_message": {
            k: round(1000 * v / messages, 3) for k, v in sorted(drain.server_cpu_seconds.items())
        },
        "latency": lat,
        "database_scans": scans.result,
    }


def curve(bench: Any, target: Target, options: Options, base_rate: float) -> list[dict[str, Any]]:
    points = []
    for n, size in enumerate(options.batch_curve, 1):
        log(f"phase: batch curve {n}/{len(options.batch_curve)}: size {size}")
        points.append(curve_point(bench, target, options, size, base_rate))
    return points


def _lat(lat: dict[str, Any]) -> str:
    text = f"{lat.get('p50_ms')} / {lat.get('p99_ms')}"
    if lat.get("missing"):
        text += f" ({lat['missing']} missing)"
    if lat.get("caught_up_after_s", 0.0) >= 0.5:
        text += " SATURATED"
    return text


def curve_lines(points: Iterable[dict[str, Any]], against: str) -> list[str]:
    """The batch-size curve as a table of its own (nothing if there is none)."""
    points = list(points)
    if not points:
        return []
    out = ["", f"batch-size curve (QUOTA_BATCH_MAX; ratio against the {against} baseline; "
           "latency payment → event, ms)", "",
           "| batch size | messages/s | ratio to baseline | p50 / p99 at 50% | p50 / p99 at 90% "
           "| worker CPU ms/msg | server CPU ms/msg | batches |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for p in points:
        by_share = {lat["share"]: lat for lat in p["latency"]}
        servers = ", ".join(f"{k} {v:.2f}" for k, v in p["server_cpu_ms_per_message"].items())
        out.append(
            f"| {p['batch_max']} | {p['drain']['rate']} | {p['ratio']} | "
            f"{_lat(by_share.get(0.5, {}))} | {_lat(by_share.get(0.9, {}))} | "
            f"{p['worker_cpu_ms_per_message']:.2f} | {servers or '-'} | "
            f"{sizes_summary(p['drain'].get('batch_sizes'))} |"
        )
    return out


def held(target: Target, batch_max: int) -> dict[str, Any]:
    """The Celery prefetch settings a worker of QUOTA_BATCH_MAX=batch_max runs with: the
    workers' other settings are the defaults (worker_env passes no other QUOTA_ variable)."""
    settings = Settings.model_construct(broker_url=SecretStr(target.broker_url),
                                        batch_max=batch_max)  # fmt: skip
    return prefetch(settings)


def baselines(bench: Any, target: Target, options: Options) -> dict[str, Any]:
    """The no-op baseline at prefetch 1 and, when batching, at the batching worker's
    prefetch; the ratio is against the faster."""
    n = options.batch_max
    log("phase 1/6: baseline (no-op tasks, same configuration and layout), prefetch 1")
    one = {**asdict(bench.baseline(1)), "batch_max": 1, "prefetch": held(target, 1)}
    log(f"baseline at prefetch 1: {one['rate']} messages/s")
    batch = None
    if n > 1:
        log(f"phase 1/6: baseline again, at the prefetch of QUOTA_BATCH_MAX={n}")
        batch = {**asdict(bench.baseline(n)), "batch_max": n, "prefetch": held(target, n)}
        log(f"baseline at the prefetch of QUOTA_BATCH_MAX={n}: {batch['rate']} messages/s")
    against, base = faster_baseline(one, batch)
    return {"baseline": base, "baseline_prefetch_1": one, "baseline_prefetch_batch": batch,
            "ratio_against": against}  # fmt: skip

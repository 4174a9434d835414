"""The open-loop latency runs and the database floor: what a message costs once Celery's
share is set aside, and how long a payment takes to become an event at a given rate."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

import redis

from bench.measure import SyncProbe, percentiles, server_cpu, used_since
from bench.setup import seed_mails
from bench.workload import Workload, generate
from events.inbound import INBOUND

# `bench` below is a bench.run.Bench (typed Any, as in refusals.py: run.py imports this).
Bench = Any


def latency(
    bench: Bench, rate: float, seconds: float, first_mail: int, tag: str = "lat"
) -> dict[str, Any]:
    """Open loop: messages at a fixed rate, whatever the worker does; payment -> event.
    Each run's order ids are its own (`tag`, the rate, the first Service Mail): a run
    that repeated another's ids would wait for events that never come."""
    orders = max(10, int(rate * seconds / 1.9))
    tag = f"{tag}{int(rate)}m{first_mail}"
    seed_mails(bench.target.database_url, "bench", orders, first=first_mail)
    workload = generate(tag, orders, orders, seed=int(rate), first_mail=first_mail,
                        mail_tag="bench")  # fmt: skip
    measured = workload.paid_after()
    client = redis.Redis.from_url(bench.target.redis_url)
    last_id = client.xinfo_stream(bench.target.stream)["last-generated-id"]
    paid_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    # Where the time goes: the event's `time` is when its message was handled (staged,
    # before the batch's commit); the stream entry's id is when the relay added it.
    handled_at: dict[str, float] = {}
    published_at: dict[str, float] = {}
    stop = threading.Event()

    def read() -> None:
        nonlocal last_id
        reader = redis.Redis.from_url(bench.target.redis_url)
        while not stop.is_set():
            reply: Any = reader.xread({bench.target.stream: last_id}, count=1000, block=200)
            now = time.time()
            for _key, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    if fields[b"type"] != b"mail.quota.changed":
                        continue
                    event = json.loads(fields[b"event"])
                    order = event["data"]["order_id"]
                    seen_at.setdefault(order, now)
                    handled_at.setdefault(order, datetime.fromisoformat(event["time"]).timestamp())
                    published_at.setdefault(order, int(entry_id.split(b"-")[0]) / 1000)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # The disk meanwhile: a stalled flush holds every durable commit as long.
    with SyncProbe(bench.data_dir) as probe:
        interval = 1.0 / rate
        start, cpu = time.monotonic(), time.process_time()
        with bench.app.producer_or_acquire() as producer:
            for n, m in enumerate(workload.messages):
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                bench.app.send_task(m.name, kwargs=m.payload, queue=INBOUND[m.name].queue,
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
    timed = [o for o in measured if o in seen_at and o in paid_at]
    delays = [seen_at[o] - paid_at[o] for o in timed]
    return {"target_rate": round(rate, 1), "sent_rate": round(sent_rate, 1),
            "caught_up_after_s": round(behind, 2),
            "producer_cpu_ms_per_message": round(1000 * cpu / len(workload.messages), 3),
            "missing": len(measured - set(seen_at)), **percentiles(delays),
            "segments": segments(timed, paid_at, handled_at, published_at, seen_at),
            "disk_sync": probe.summary()}  # fmt: skip


def segments(orders: list[str], *marks: dict[str, float]) -> dict[str, dict[str, float]]:
    """Payment → event cut at the handling and the stream's append: each part's
    percentiles, and its mean over the slowest 1% (where the p99 comes from)."""
    names = ("paid_to_handled", "handled_to_stream", "stream_to_reader")
    parts = {n: [later[o] - earlier[o] for o in orders]
             for n, earlier, later in zip(names, marks, marks[1:], strict=False)}  # fmt: skip
    total = sorted(range(len(orders)), key=lambda i: marks[-1][orders[i]] - marks[0][orders[i]])
    slowest = total[int(0.99 * len(total)) :]
    out: dict[str, dict[str, float]] = {}
    for name, values in parts.items():
        out[name] = percentiles(values)
        if slowest:
            out[name]["slowest_1pct_mean_ms"] = round(
                1000 * sum(values[i] for i in slowest) / len(slowest), 1
            )
    return out


def db_floor(bench: Bench) -> dict[str, Any]:
    """The same transactions through the bus, in this process: no broker, no Celery."""
    from worker.bootstrap import build
    from worker.settings import Settings

    orders = bench.options.floor_orders
    first = 10_000_000
    seed_mails(bench.target.database_url, "floor", orders, first=first)
    workload = generate("floor", orders, orders, seed=3, first_mail=first)
    settings = Settings(database_url=bench.target.database_url, redis_url=bench.target.redis_url,
                        broker_url=bench.target.broker_url,
                        events_stream=bench.target.stream + ".floor")  # fmt: skip
    container = build(settings)
    cpu, servers = time.process_time(), server_cpu()
    seconds = through_bus(container, workload, "floor")
    cpu, servers = time.process_time() - cpu, used_since(servers)
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

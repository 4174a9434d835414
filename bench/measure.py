"""How a run is measured: Celery's task events (as Flower reads them), CPU and memory of
the process trees and of the servers, and percentiles."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from celery import Celery


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
            # One subscription for the whole run, with no timeout: kombu's consumer looks
            # at should_stop every second by itself. A capture with a timeout tears the
            # subscription down after each idle second and makes it anew, and Redis's
            # pub/sub drops what is published in between (a drain's first events, once:
            # "no progress for 60 s at 780 of 782 messages").
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def reset(self) -> None:
        with self.lock:
            self.received = self.succeeded = self.failed = 0
            self.first_received, self.last_succeeded = None, 0.0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def stalled(self, total: int) -> str:
        return (f"no progress for 60 s at {self.done} of {total} messages "
                f"({self.received} task-received events seen)")  # fmt: skip

    def stop(self) -> None:
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


def used_since(before: dict[str, float]) -> dict[str, float]:
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


class SyncProbe:
    """A thread that writes 8 KiB and fdatasyncs a file in `directory` every 20 ms while
    it runs: how long the disk makes a durable commit wait. On a VM whose disk stalls (a
    flush held for half a second), every PostgreSQL commit waits as long, whatever the
    worker does; the latency rows say so beside their percentiles."""

    STALL_SECONDS = 0.1

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"sync-probe-{os.getpid()}.bin"
        self.waits: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sync-probe", daemon=True)

    def __enter__(self) -> SyncProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while not self._stop.wait(0.02):
                os.pwrite(fd, b"\0" * 8192, 0)
                started = time.monotonic()
                os.fdatasync(fd)
                self.waits.append(time.monotonic() - started)
        finally:
            os.close(fd)
            self.path.unlink(missing_ok=True)

    def summary(self) -> dict[str, Any]:
        stalls = [w for w in self.waits if w > self.STALL_SECONDS]
        return {**percentiles(self.waits), "stalls_over_100ms": len(stalls),
                "stalled_s": round(sum(stalls), 2)}  # fmt: skip

"""`quota-worker run`: Celery worker processes, the event relay and the expiry sweep.

The Celery workers are child processes in their own session, so a signal
at the terminal reaches only this supervisor, which forwards one SIGTERM
(Celery's warm shutdown: finish or return in-flight messages). The relay
and the sweep are threads here, never in a forking process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import structlog

from worker.adapters.deliveries import CONSUMED_QUEUES
from worker.adapters.prune import prune
from worker.adapters.relay import Relay, Waker
from worker.bootstrap import Container, utcnow
from worker.entrypoints.app import create_app
from worker.entrypoints.lifeline import SUPERVISOR_PID_ENV
from worker.ops import metrics, plot
from worker.ops.queries import Thresholds, snapshot

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_SECONDS = 60  # above the task time limit plus the soft shutdown
PRUNE_EVERY_SECONDS = 300.0  # or a quarter of the shortest retention, if that is sooner
PRUNE_BATCHES_PER_PASS = 20  # of 500 rows each, per kind


@dataclass(frozen=True)
class Layout:
    processes: int
    concurrency: int
    pool: str
    loglevel: str = "INFO"


class Runner:
    def __init__(self, container: Container, layout: Layout) -> None:
        self.container = container
        self.layout = layout
        self.stop_event = threading.Event()
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.threads: list[threading.Thread] = []
        self.relay: Relay = container.relay()
        self._stopped = False
        self.celery = create_app(container.settings)

    def worker_command(self, index: int) -> list[str]:
        host = socket.gethostname()
        return [
            sys.executable, "-m", "celery", "-A", "worker.entrypoints.worker_app:app", "worker",
            "--queues", ",".join(CONSUMED_QUEUES),
            "--pool", self.layout.pool,
            "--concurrency", str(self.layout.concurrency),
            # Unique per supervisor: two `run`s on one host must not share a
            # node name (RabbitMQ refuses the second one's control queue).
            "--hostname", f"quota{index}-{os.getpid()}@{host}",
            "--loglevel", self.layout.loglevel,
            "--task-events",
        ]  # fmt: skip

    def start(self) -> None:
        log.info(
            "starting",
            processes=self.layout.processes,
            pool=self.layout.pool,
            concurrency=self.layout.concurrency,
            stream=self.container.settings.events_stream,
        )
        for index in range(self.layout.processes):
            self._spawn(index)
        port = self.container.settings.metrics_port
        if port is not None:
            limits = Thresholds(require_worker=False)
            metrics.serve(
                port,
                lambda: snapshot(
                    self.container, self.celery, limits, ask_workers=False, history=False
                ),
            )
            log.info("metrics_served", port=port, path="/metrics")
        self._thread("relay", lambda: self.relay.run(self.stop_event, self.container.redis))
        self._thread("sweep", self._sweep_loop)
        self._thread("sample", self._sample_loop)
        self._thread("supervise", self._supervise)

    def _thread(self, name: str, target: object) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self.threads.append(thread)

    def _spawn(self, index: int) -> None:
        self.children[index] = subprocess.Popen(
            self.worker_command(index),
            start_new_session=True,
            # Each worker dies with this supervisor, however it dies (lifeline.py).
            env={**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())},
        )
        log.info("worker_process_started", index=index, pid=self.children[index].pid)

    def _supervise(self) -> None:
        """Restart a worker process that died on its own (OOM, kill -9)."""
        while not self.stop_event.wait(1.0):
            for index, child in list(self.children.items()):
                code = child.poll()
                if code is not None and not self.stop_event.is_set():
                    log.error("worker_process_died", index=index, pid=child.pid, exit_code=code)
                    self._spawn(index)

    def _sweep_loop(self) -> None:
        interval = self.container.settings.sweep_interval_seconds
        pruned_at = 0.0
        while not self.stop_event.is_set():
            try:
                self.container.bus.sweep()
                if time.monotonic() - pruned_at >= self._prune_every():
                    pruned_at = time.monotonic()
                    self._prune()
            except Exception:  # an outage must not end the sweep; it runs again next interval
                log.exception("sweep_failed")
            self.stop_event.wait(interval)

    def _prune_every(self) -> float:
        retention = self.container.retention()
        shortest = min(retention.outbox, retention.dedup).total_seconds()
        return min(PRUNE_EVERY_SECONDS, shortest / 4)

    def _prune(self) -> None:
        """A bounded pass: what is left waits for the next one (worker/adapters/prune.py)."""
        removed = prune(
            self.container.database, self.container.retention(), utcnow(),
            max_batches=PRUNE_BATCHES_PER_PASS,
        )  # fmt: skip
        if any(removed.values()):
            log.info("pruned", **removed)

    def _sample_loop(self) -> None:
        """Record queue depths and backlog for `quota-worker status --plot`."""
        limits = Thresholds(require_worker=False)
        while not self.stop_event.is_set():
            try:
                status = snapshot(
                    self.container, self.celery, limits, ask_workers=False, history=False
                )
                plot.record(self.container, status)
            except Exception:  # an outage must not end the sampling
                log.exception("sample_failed")
            self.stop_event.wait(plot.SAMPLE_SECONDS)

    def stop(self) -> None:
        """Warm shutdown: workers finish or return their messages, then the relay drains."""
        if self._stopped:
            return
        self._stopped = True
        log.info("stopping", workers=len(self.children))
        self.stop_event.set()
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker_process_killed_after_grace", pid=child.pid)
                child.kill()
                child.wait()
        Waker(self.container.redis, self.container.settings.events_stream)()  # relay: drain, exit
        for thread in self.threads:
            thread.join(timeout=30)
        log.info("stopped", events_published=self.relay.published)

    def run_until_signal(self) -> int:
        received: list[int] = []

        def _on_signal(signum: int, _frame: object) -> None:
            received.append(signum)  # only a list append: safe inside a signal handler

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        self.start()
        while not received:
            time.sleep(0.2)
        log.info("signal_received", signal=signal.Signals(received[0]).name)
        self.stop()
        return 0

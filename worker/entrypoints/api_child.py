"""The HTTP API as a child of `dev` and `demo`: its port, its one-off token, its lifeline.

The child is `quota-worker api` in a session of its own, told through its environment
(never its command line) which token to accept and whom to die with (lifeline.py): a
supervisor killed even with SIGKILL leaves no API behind.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from worker.entrypoints.lifeline import SUPERVISOR_PID_ENV

DEFAULT_PORT = 8080
NEXT_PORTS = 20  # with the default port taken, the next free one of these is used
DEV_TOKEN_NAME = "dev-operator"
STOP_SECONDS = 20


class PortTaken(RuntimeError):
    """No port to serve on; the message says which and how to choose another."""


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def choose_port(host: str, environ: Mapping[str, str]) -> int:
    """QUOTA_API_PORT if set and free; unset, 8080 or the next free port after it.

    A port chosen by the operator is never silently moved (a script may wait on it); the
    default one is, since a newcomer only needs the address printed.
    """
    asked = environ.get("QUOTA_API_PORT")
    if asked:
        if _free(host, int(asked)):
            return int(asked)
        raise PortTaken(
            f"{host}:{asked} (QUOTA_API_PORT) is taken by another program: the API is not "
            "started; set QUOTA_API_PORT to a free port to have it"
        )
    for port in range(DEFAULT_PORT, DEFAULT_PORT + NEXT_PORTS):
        if _free(host, port):
            return port
    raise PortTaken(
        f"{host}:{DEFAULT_PORT}-{DEFAULT_PORT + NEXT_PORTS - 1} are all taken: the API is not "
        "started; set QUOTA_API_PORT to a free port to have it"
    )


def one_off_tokens(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """QUOTA_API_TOKENS for the child, and the token minted for this run (None: the
    operator's own QUOTA_API_TOKENS are used, and no token is printed)."""
    if environ.get("QUOTA_API_TOKENS", "").strip():
        return environ["QUOTA_API_TOKENS"], None
    token = secrets.token_urlsafe(32)
    return f"{DEV_TOKEN_NAME}:operate:{token}", token


@dataclass
class ApiChild:
    """`quota-worker api` started by a supervisor, on `host`:`port`, with `tokens`."""

    host: str
    port: int
    tokens: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{'127.0.0.1' if self.host == '0.0.0.0' else host}:{self.port}"

    def start(self, environ: Mapping[str, str], log: Path | None = None) -> None:
        # Started from the supervisor's main thread: PR_SET_PDEATHSIG follows the thread
        # that forked, and the main thread lives as long as the supervisor does.
        env = {
            **environ,
            "QUOTA_API_HOST": self.host,
            "QUOTA_API_PORT": str(self.port),
            "QUOTA_API_TOKENS": self.tokens,
            SUPERVISOR_PID_ENV: str(os.getpid()),
        }
        out: IO[bytes] | None = log.open("ab") if log is not None else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "api"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,  # a Ctrl-C reaches the supervisor, which stops it
        )
        if out is not None:
            out.close()

    def wait_up(self, seconds: float = 30.0) -> bool:
        """True once /healthz answers; False if the child died or stayed silent."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (uvicorn's graceful stop), then SIGKILL after STOP_SECONDS."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_beside(
    host: str, environ: Mapping[str, str], log: Path | None = None
) -> tuple[ApiChild | None, str]:
    """Start the API for `dev` or `demo`, and the lines that tell a newcomer how to use it
    (the token minted for this run among them: printed, never logged)."""
    try:
        port = choose_port(host, environ)
    except PortTaken as exc:
        return None, f"the API:        not started: {exc}"
    tokens, minted = one_off_tokens(environ)
    api = ApiChild(host, port, tokens)
    api.start(environ, log)
    if not api.wait_up():
        code = api.stop()
        where = f"; see {log}" if log is not None else " (its lines are above)"
        return None, f"the API:        did not start (exit code {code}){where}"
    moved = (
        f" ({DEFAULT_PORT} was taken)"
        if port != DEFAULT_PORT and not environ.get("QUOTA_API_PORT")
        else ""
    )
    lines = [
        f"the API:        {api.base}/v1{moved} (OpenAPI: {api.base}/openapi.json)",
        f"the console:    {api.base}/console/",
    ]
    if minted is None:
        lines.append("sign in with:   a token of QUOTA_API_TOKENS")
    else:
        lines.append(f"operator token: {minted}")
        lines.append(
            f"                ({DEV_TOKEN_NAME}, scope operate, for this run only; "
            "set QUOTA_API_TOKENS to choose your own)"
        )
    return api, "\n".join(lines)

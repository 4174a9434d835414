"""A Celery worker process dies with the supervisor that started it.

The supervisor starts its workers in a session of their own (a Ctrl-C at the terminal
must reach only the supervisor), so a kill of the supervisor's process group misses
them, and a supervisor killed with SIGKILL cannot stop them: they would go on taking
messages without the relay and the sweep. So each worker asks the kernel for a
SIGTERM (Celery's warm shutdown: finish or return in-flight messages, then stop its
pool) when its parent dies (Linux's PR_SET_PDEATHSIG), and elsewhere watches its
parent once a second. A parent already gone when it starts ends it at once.
"""

from __future__ import annotations

import os
import signal
import threading

from worker.adapters.orphans import signal_on_parent_death

# Set by the supervisor (worker/entrypoints/runner.py) in each worker's environment; a
# worker started by hand (`celery -A ... worker`) has none and follows no one.
SUPERVISOR_PID_ENV = "QUOTA_SUPERVISOR_PID"
WATCH_SECONDS = 1.0


def die_with_supervisor(environ: dict[str, str] | None = None) -> bool:
    """Follow the supervisor named in the environment; False if there is none."""
    expected = (environ if environ is not None else os.environ).get(SUPERVISOR_PID_ENV)
    if not expected:
        return False
    supervisor = int(expected)
    if not signal_on_parent_death(signal.SIGTERM):
        _watch(supervisor)  # not Linux, or refused (a sandbox, say): watch instead
    if os.getppid() != supervisor:  # it died before we asked: nothing will tell us
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def _watch(supervisor: int) -> None:
    def watch() -> None:
        while os.getppid() == supervisor:
            threading.Event().wait(WATCH_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()

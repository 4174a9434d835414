"""The `quota-worker` command: `main`, with every subcommand registered on it."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

# prometheus-client chooses where counters live when it is first imported:
# with a metrics port, the supervisor and the worker processes it starts
# must share one directory, so it is set before anything imports it (every
# module of worker.cli runs this package's __init__ first).
if os.environ.get("QUOTA_METRICS_PORT") and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="quota-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)

from worker.adapters.versions import UntestedLibraryError

try:  # imported for the commands they register on main
    from worker.cli import (  # noqa: F401
        api,
        bench,
        change_requests,
        commands,
        dead_letters,
        status,
        upkeep,
    )
except UntestedLibraryError as exc:  # refused as they are imported: the reason, not a traceback
    sys.exit(f"Error: {exc}")
from worker.cli.base import main

__all__ = ["main"]

"""A child process that dies with its parent, however the parent dies (even SIGKILL).

Linux's PR_SET_PDEATHSIG asks the kernel to signal a process when the thread that forked
it ends; it survives exec (except of set-uid programs), so it also covers children that
are not Python, such as the embedded redis-server. Elsewhere it is not available and the
caller falls back to watching (worker/entrypoints/lifeline.py).
"""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def signal_on_parent_death(sig: int = signal.SIGTERM) -> bool:
    """Ask for `sig` when the parent dies; False where the kernel cannot or refused."""
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0)


def terminate_with_parent() -> None:
    """A `preexec_fn` for Popen: the child gets SIGTERM when its parent dies."""
    signal_on_parent_death(signal.SIGTERM)

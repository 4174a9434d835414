"""The library versions whose internals we rely on, and the check that refuses any other.

A few modules reach past a library's documented API, each for a measured reason,
and each is the only module that does so for its library:

- kombu (and redis-py under it): `worker/adapters/transport.py` overrides the Redis
  channel's private `_brpop_start`/`_brpop_read`, names its lists (`_q_for_pri`,
  `priority_steps`), writes its unacknowledged record and registers both transports
  (`_transport_cache`); `worker/adapters/deliveries.py`, which only it calls, reads
  the message envelope kombu stores in Redis.
- SQLAlchemy and psycopg: `worker/adapters/pipeline.py` runs SQLAlchemy's compiled
  statements (`bind_names`, `construct_params`, the types' processors) through
  psycopg's pipeline mode, under SQLAlchemy's connection.
- Celery: `worker/entrypoints/consumer.py` subclasses the worker's `Consumer` and
  wraps its `create_task_handler`.

Each calls `check` for its libraries when it is imported or its transport is
installed, so `quota-worker run` (and every Celery worker process) stops at start
on a version it was not tested with, rather than misbehave on a message later.
`tests/unit/test_library_assumptions.py` pins what each module assumes. A patch
release of a tested minor version is accepted; any other is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class Tested:
    """The versions of one library tested against the module using its internals."""

    lowest: str  # the version pinned in pyproject.toml
    below: str  # the first version not tested (the next minor release)
    user: str
    tests: str


TESTED = {
    "kombu": Tested(
        "5.7.0", "5.8", "worker/adapters/transport.py", "tests/integration/test_transport.py"
    ),
    "redis": Tested(
        "8.1.0", "8.2", "worker/adapters/transport.py", "tests/integration/test_transport.py"
    ),
    "celery": Tested(
        "5.7.0", "5.8", "worker/entrypoints/consumer.py", "tests/e2e/test_envelope_corpus.py"
    ),
    "sqlalchemy": Tested(
        "2.1.9", "2.2", "worker/adapters/pipeline.py", "tests/integration/test_pipeline.py"
    ),
    "psycopg": Tested(
        "3.3.9", "3.4", "worker/adapters/pipeline.py", "tests/integration/test_pipeline.py"
    ),
}


class UntestedLibraryError(RuntimeError):
    """A library is installed in a version its internals were not tested with."""


def installed(library: str) -> str:
    """The installed version of `library` (its distribution's metadata)."""
    return metadata.version(library)


def _key(version: str) -> tuple[tuple[int, ...], int]:
    """Ordered as releases are: 5.7.0rc1 < 5.7.0 = 5.7.0.post1 < 5.7.1."""
    public = version.split("+")[0]
    match = re.match(r"\d+(?:\.\d+)*", public)
    if match is None:
        return (0,), 0
    release = tuple(int(part) for part in match.group().split("."))
    pre = re.search(r"(?:a|b|rc|dev)\d+", public[match.end() :])
    return (*release, *(0,) * (4 - len(release))), 0 if pre else 1


def accepted(library: str, version: str) -> bool:
    tested = TESTED[library]
    return _key(tested.lowest) <= _key(version) < (_key(tested.below)[0], 0)


def problem(library: str) -> str | None:
    """Why the installed `library` is refused, or None if it was tested."""
    tested = TESTED[library]
    try:
        version = installed(library)
    except metadata.PackageNotFoundError:
        version = "(not installed as a distribution)"
    else:
        if accepted(library, version):
            return None
    return (
        f"{library} {version} is installed, but {tested.user} relies on its internals and was "
        f"tested only with {library} >={tested.lowest},<{tested.below}. Install a tested "
        f"version (pyproject.toml pins {library}=={tested.lowest}), or run "
        f"tests/unit/test_library_assumptions.py and {tested.tests} with {library} {version} "
        "and, if they pass, widen its range in worker/adapters/versions.py."
    )


def check(*libraries: str) -> None:
    """Raise UntestedLibraryError naming every one of `libraries` not in its tested range."""
    problems = [p for p in map(problem, libraries) if p is not None]
    if problems:
        raise UntestedLibraryError("\n".join(problems))

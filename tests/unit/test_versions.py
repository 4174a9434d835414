"""The start-up guard: a library whose internals we use, in a version not tested, is refused."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from worker.adapters import versions

ROOT = Path(__file__).resolve().parents[2]


def _installed(monkeypatch: pytest.MonkeyPatch, **found: str) -> None:
    def version(library: str) -> str:
        if library not in found:
            raise metadata.PackageNotFoundError(library)
        return found[library]

    monkeypatch.setattr(versions, "installed", version)


def test_a_version_inside_the_tested_range_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, kombu="5.7.3", redis="8.1.0")
    versions.check("kombu", "redis")


def test_a_newer_minor_release_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message names the library, the version found, the range, the pin and the tests."""
    _installed(monkeypatch, kombu="5.8.0")
    with pytest.raises(versions.UntestedLibraryError) as refused:
        versions.check("kombu")
    message = str(refused.value)
    for part in (
        "kombu 5.8.0 is installed",
        "worker/adapters/transport.py",
        ">=5.7.0,<5.8",
        "kombu==5.7.0",
        "tests/integration/test_transport.py",
        "tests/unit/test_library_assumptions.py",
        "worker/adapters/versions.py",
    ):
        assert part in message


@pytest.mark.parametrize("found", ["2.1.8", "2.2.0", "2.2.0b1", "3.0.0", "1.4.54"])
def test_an_older_or_newer_sqlalchemy_is_refused(
    monkeypatch: pytest.MonkeyPatch, found: str
) -> None:
    _installed(monkeypatch, sqlalchemy=found)
    refused = re.escape(f"sqlalchemy {found} is installed")
    with pytest.raises(versions.UntestedLibraryError, match=refused):
        versions.check("sqlalchemy")


@pytest.mark.parametrize("found", ["3.3.9", "3.3.10", "3.3.9.post1", "3.3.12+local"])
def test_a_later_patch_release_of_the_tested_minor_passes(
    monkeypatch: pytest.MonkeyPatch, found: str
) -> None:
    _installed(monkeypatch, psycopg=found)
    versions.check("psycopg")


def test_a_pre_release_of_the_tested_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, celery="5.7.0rc2")
    with pytest.raises(versions.UntestedLibraryError, match=r"celery 5\.7\.0rc2"):
        versions.check("celery")


def test_every_refused_library_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One start-up failure tells everything to fix, not one library per attempt."""
    _installed(monkeypatch, sqlalchemy="2.2.1", psycopg="3.4.0")
    with pytest.raises(versions.UntestedLibraryError) as refused:
        versions.check("sqlalchemy", "psycopg")
    assert "sqlalchemy 2.2.1" in str(refused.value)
    assert "psycopg 3.4.0" in str(refused.value)


def test_a_library_with_no_distribution_metadata_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _installed(monkeypatch)
    with pytest.raises(versions.UntestedLibraryError, match=r"redis \(not installed"):
        versions.check("redis")


def test_every_pinned_version_is_the_lowest_of_its_tested_range() -> None:
    """Moving a pin in pyproject.toml means moving its tested range too (and running the tests)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = {}
    for requirement in project["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        pins[name.split("[")[0].lower()] = version
    assert {library: pins[library] for library in versions.TESTED} == {
        library: tested.lowest for library, tested in versions.TESTED.items()
    }


@pytest.mark.parametrize(
    ("broker", "library"),
    [
        ("redis://127.0.0.1:6379/0", "kombu"),
        ("redis://127.0.0.1:6379/0", "redis"),
        ("amqp://guest:guest@127.0.0.1//", "kombu"),
        ("redis://127.0.0.1:6379/0", "celery"),
    ],
)
def test_the_worker_configuration_refuses_an_untested_library_before_any_message(
    monkeypatch: pytest.MonkeyPatch, broker: str, library: str
) -> None:
    """Building the Celery app, as `quota-worker run` and each worker process do at start,
    installs the transport and names the consumer: the guard runs there."""
    from worker.entrypoints.app import create_app
    from worker.settings import Settings

    found = {name: tested.lowest for name, tested in versions.TESTED.items()}
    _installed(monkeypatch, **{**found, library: "99.0.0"})
    with pytest.raises(versions.UntestedLibraryError, match=f"{library} 99"):
        create_app(Settings(broker_url=broker))

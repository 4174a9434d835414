"""docker-compose.yml and the Dockerfile, checked against the code (no Docker engine here)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from events import subscriber
from worker import cli
from worker.entrypoints import runner
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ACL_FILE = ROOT / "deploy" / "redis" / "users.acl"
# name -> rules, as redis-server reads the file (it allows no comments).
ACL = {
    line.split()[1]: line.split()[2:] for line in ACL_FILE.read_text().splitlines() if line.strip()
}


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default}, with every variable unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _env(service: str) -> dict[str, str]:
    return {
        k: _interpolate(str(v)) for k, v in (SERVICES[service].get("environment") or {}).items()
    }


def _resolves(args: list[str]) -> bool:
    """True if `quota-worker ARGS` names a real command of the CLI."""
    command: click.Command = cli.main
    for word in args:
        if word.startswith("-"):
            break
        if not isinstance(command, click.Group) or word not in command.commands:
            return False
        command = command.commands[word]
    return not isinstance(command, click.Group)


def _code_reads(variable: str) -> bool:
    return any(variable in path.read_text() for path in (ROOT / "worker").rglob("*.py"))


@pytest.mark.parametrize("service", ["migrate", "worker", "api"])
def test_every_quota_variable_in_the_compose_file_is_read_by_the_code(service: str) -> None:
    fields = {f"QUOTA_{name.upper()}" for name in Settings.model_fields}
    unknown = [v for v in _env(service) if v not in fields and not _code_reads(v)]
    assert unknown == []


@pytest.mark.parametrize("service", ["migrate", "worker", "api"])
def test_the_compose_environment_is_a_valid_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _env(service).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.database().startswith("postgresql+psycopg://")
    assert settings.broker() == settings.redis()


def test_the_database_driver_of_the_compose_file_is_installed() -> None:
    import psycopg

    assert psycopg.__version__


@pytest.mark.parametrize("service", ["migrate", "worker", "api"])
def test_the_services_run_real_commands_of_the_cli(service: str) -> None:
    assert _resolves(SERVICES[service]["command"])


def test_the_worker_healthcheck_is_a_real_command_of_the_cli() -> None:
    test = SERVICES["worker"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "quota-worker"] and _resolves(test[2:])


def test_the_api_healthcheck_asks_readyz_on_the_port_the_api_listens_on() -> None:
    test = " ".join(SERVICES["api"]["healthcheck"]["test"])
    port = _env("api")["QUOTA_API_PORT"]
    assert f"http://127.0.0.1:{port}/readyz" in test


def test_the_api_is_published_on_the_hosts_loopback_only() -> None:
    port = _env("api")["QUOTA_API_PORT"]
    assert SERVICES["api"]["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_the_api_starts_with_no_token_unless_one_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in _env("api").items():
        monkeypatch.setenv(name, value)
    assert SERVICES["api"]["environment"]["QUOTA_API_TOKENS"] == "${QUOTA_API_TOKENS:-}"
    assert not Settings().api_token_set


def test_the_api_starts_after_migration_on_healthy_services() -> None:
    assert SERVICES["api"]["depends_on"] == SERVICES["worker"]["depends_on"]


def test_redis_keeps_its_queues_across_a_restart_and_never_evicts() -> None:
    command = SERVICES["redis"]["command"]
    pairs = dict(zip(command[1::2], command[2::2], strict=False))
    assert pairs["--appendonly"] == "yes"
    assert pairs["--save"] == ""
    assert pairs["--maxmemory-policy"] == "noeviction"


def test_the_worker_starts_after_migration_on_healthy_services() -> None:
    depends = SERVICES["worker"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["redis"]["condition"] == depends["postgres"]["condition"] == "service_healthy"


def test_the_worker_is_given_longer_to_stop_than_its_warm_shutdown_takes() -> None:
    grace = SERVICES["worker"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > runner.SHUTDOWN_GRACE_SECONDS


def test_flower_watches_the_broker_the_worker_uses() -> None:
    command = _interpolate(" ".join(SERVICES["flower"]["command"]))
    assert f"--broker={_env('worker')['QUOTA_BROKER_URL']}" in command


def test_the_image_runs_the_console_script_of_the_package() -> None:
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", DOCKERFILE, re.MULTILINE)
    assert entrypoint is not None
    assert json.loads(entrypoint.group(1)) == list(PYPROJECT["project"]["scripts"])


def test_the_image_copies_every_package_it_installs() -> None:
    packages = [
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for package in packages:
        assert re.search(rf"^COPY {package} ", DOCKERFILE, re.MULTILINE), package


def test_postgres_is_created_with_the_credentials_the_worker_uses() -> None:
    env = {k: _interpolate(str(v)) for k, v in SERVICES["postgres"]["environment"].items()}
    url = _env("worker")["QUOTA_DATABASE_URL"]
    assert (
        f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"
        in url
    )


def test_prometheus_scrapes_the_port_the_worker_serves_metrics_on() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = [
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    ]
    assert f"worker:{_env('worker')['QUOTA_METRICS_PORT']}" in targets


def test_grafana_is_given_the_dashboards_and_the_prometheus_datasource() -> None:
    mounts = " ".join(SERVICES["grafana"]["volumes"])
    assert "./deploy/grafana/dashboards" in mounts and "./deploy/grafana/provisioning" in mounts
    assert (ROOT / "deploy/grafana/dashboards/quota-worker.json").is_file()


def _redis_option(name: str) -> str:
    command = SERVICES["redis"]["command"]
    return str(command[command.index(name) + 1])


def test_redis_loads_the_acl_file_of_the_repository() -> None:
    path = _redis_option("--aclfile")
    assert f"./deploy/redis/users.acl:{path}:ro" in SERVICES["redis"]["volumes"]
    assert all(line.startswith("user ") for line in ACL_FILE.read_text().splitlines() if line)


def test_no_one_reaches_redis_without_a_password() -> None:
    assert ACL["default"] == ["off"]
    for user, rules in ACL.items():
        assert "nopass" not in rules, user


@pytest.mark.parametrize("service", ["migrate", "worker", "api"])
@pytest.mark.parametrize("url", ["QUOTA_BROKER_URL", "QUOTA_REDIS_URL"])
def test_the_worker_logs_in_as_the_acl_files_worker_user(service: str, url: str) -> None:
    raw = str(SERVICES[service]["environment"][url])
    login = urlsplit(_interpolate(raw))
    assert login.username == "quota-worker" and f">{login.password}" in ACL["quota-worker"]
    assert "${REDIS_WORKER_PASSWORD:-" in raw


def test_flower_and_the_redis_healthcheck_use_the_worker_users_password() -> None:
    password = urlsplit(_env("worker")["QUOTA_BROKER_URL"]).password
    flower = " ".join(SERVICES["flower"]["command"])
    check = SERVICES["redis"]["healthcheck"]["test"]
    assert "${REDIS_WORKER_PASSWORD:-" in flower and "${REDIS_WORKER_PASSWORD:-" in " ".join(check)
    assert check[check.index("--user") + 1] == "quota-worker"
    assert _interpolate(check[check.index("--pass") + 1]) == password


def test_quota_events_by_default_takes_the_events_the_compose_worker_publishes() -> None:
    source = _env("worker")["QUOTA_EVENT_SOURCE"]
    assert source == subscriber.DEFAULT_SOURCE == Settings.model_fields["event_source"].default


def _commands(rules: list[str]) -> set[str]:
    return {rule[1:].lower() for rule in rules if rule.startswith("+")}


def _finish_commands() -> set[str]:
    """What QuotaEvents' Lua script calls: it runs with the consumer's rights."""
    return {c.lower() for c in re.findall(r"redis\.call\('(\w+)'", subscriber._FINISH)}


def test_the_consumer_user_may_run_what_quota_events_runs() -> None:
    granted = _commands(ACL["dashboard"])
    issued = {"xreadgroup", "xautoclaim", "xack", "xgroup|create", "exists", "hget",
              "evalsha", "script|load"}  # fmt: skip
    assert _finish_commands() == {"setnx", "getex", "hget", "hset", "xack"}
    assert issued | _finish_commands() <= granted
    stream = _env("worker")["QUOTA_EVENTS_STREAM"]
    keys = [rule[1:] for rule in ACL["dashboard"] if rule.startswith("~")]
    for key in (stream, f"{stream}:dashboard:seen:an-event-id", f"{stream}:dashboard:versions"):
        assert any(fnmatch.fnmatchcase(key, pattern) for pattern in keys), key
    assert not any(fnmatch.fnmatchcase(f"{stream}:billing:versions", p) for p in keys)


def test_the_consumer_user_may_not_write_the_stream() -> None:
    rules = ACL["dashboard"]
    # Commands one by one, never a category (+@write, +@stream, +@all would bring XADD).
    assert not [r for r in rules if r.startswith(("+@", "allcommands", "&", "allchannels"))]
    assert "resetchannels" in rules
    writes = {"xadd", "xdel", "xtrim", "xsetid", "xgroup", "xgroup|destroy", "xgroup|setid",
              "del", "unlink", "set", "getset", "expire", "pexpire", "expireat", "rename",
              "copy", "restore", "move", "eval", "publish", "flushdb", "flushall"}  # fmt: skip
    assert _commands(rules) & writes == set()


def test_security_md_gives_the_acl_files_lines() -> None:
    section = (ROOT / "SECURITY.md").read_text().split("## Locking the broker down")[1]
    documented = [line for line in section.splitlines() if line.startswith("user ")]
    # The same lines, with a placeholder where the file has its default password.
    placeholder = re.compile(r" >[A-Z_]+_PASSWORD ")
    assert [placeholder.sub(" >* ", line) for line in documented] == [
        re.sub(r" >\S+ ", " >* ", line) for line in ACL_FILE.read_text().splitlines() if line
    ]

"""deploy/redis/users.acl on a real Redis: only the worker writes the event stream.

Each test creates the file's users on the test Redis under names of its own
(`ACL SETUSER`, deleted afterwards), with the test's stream and queue in
place of `quota.events` and `quota.orders`: the worker's relay publishes as
`quota-worker`, `QuotaEvents` consumes as `dashboard`, `dashboard` gets
NOPERM for every command that could write the stream, and a Celery producer
as `checkout` can publish to its own queue only. The rules hold on Redis 6.2
(the embedded server) and 7.x (CI): they allow commands rather than key
modes, since 6.2 has no read-only key selectors.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from celery import Celery
from kombu.exceptions import OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from events.schemas import QuotaChangedData
from events.subscriber import Event, QuotaEvents
from tests.conftest import Services, migrated_database
from tests.helpers import new_id, short_tmp, wait_until
from tests.integration.shop import Shop
from tests.integration.stream_events import consume, expired, publish, quota_changed
from tests.payloads import VALID
from worker.adapters.embedded import redis_server_binary
from worker.bootstrap import Container, build
from worker.settings import Settings

ACL_FILE = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "users.acl"


def acl_file() -> dict[str, list[str]]:
    """The file's users: name -> rules, as Redis reads them."""
    users = {}
    for line in ACL_FILE.read_text().splitlines():
        if line.strip():
            keyword, name, *rules = line.split()
            assert keyword == "user", line
            users[name] = rules
    return users


def with_login(url: str, user: str, password: str) -> str:
    """`url` (redis://, rediss://, unix://, redis+socket://) logged in as `user`."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:{quote(password)}@{host}"))


@dataclass
class Users:
    """The ACL file's users on the test Redis, under this test's names, keys and passwords."""

    admin: redis.Redis
    redis_url: str
    broker_url: str
    stream: str = field(default_factory=lambda: new_id("quota.events.acl"))
    queue: str = field(default_factory=lambda: new_id("quota.orders.acl"))
    names: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)

    def create(self) -> None:
        for user, rules in acl_file().items():
            if user == "default":  # never turned off here: the suite logs in as it
                continue
            self.names[user] = new_id(f"qt-{user}")
            self.passwords[user] = secrets.token_hex(16)
            ours = [self._ours(user, rule) for rule in rules]
            self.admin.execute_command("ACL", "SETUSER", self.names[user], *ours)

    def _ours(self, user: str, rule: str) -> str:
        if rule.startswith(">"):
            return ">" + self.passwords[user]
        if rule.startswith("~"):
            return rule.replace("quota.events", self.stream).replace("quota.orders", self.queue)
        return rule

    def url(self, user: str) -> str:
        return with_login(self.redis_url, self.names[user], self.passwords[user])

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user), decode_responses=True)

    def denials(self, user: str) -> list[dict[str, Any]]:
        """What Redis refused this user (ACL LOG). redis-py's CLIENT SETINFO at connect,
        which it does without, is left out: Redis 6.2 refuses it to any user without +client."""
        entries: Any = self.admin.acl_log(count=128)
        return [
            e for e in entries
            if e["username"] == self.names[user] and not e["object"].startswith("client")
        ]  # fmt: skip

    def delete(self) -> None:
        if self.names:
            self.admin.execute_command("ACL", "DELUSER", *self.names.values())
        keys = [*self.admin.scan_iter(f"{self.stream}*"), *self.admin.scan_iter(f"*{self.queue}*")]
        if keys:
            self.admin.delete(*keys)


@pytest.fixture
def users(services: Services, redis_urls: tuple[str, str]) -> Iterator[Users]:
    admin = redis.Redis.from_url(services.redis_url, decode_responses=True)
    version = tuple(int(n) for n in admin.info("server")["redis_version"].split(".")[:2])
    if version < (6, 2):
        pytest.skip(f"Redis {version}: ACLs with GETEX and XAUTOCLAIM need 6.2")
    # The Redis test server as the broker too, whatever QUOTA_TEST_BROKER_URL says.
    users = Users(admin, services.redis_url, redis_urls[1])
    try:
        users.create()
        yield users
    finally:
        users.delete()


@pytest.fixture(scope="module")
def acl_database(data_dir: Path) -> Iterator[str]:
    """A database of this module's own: its relay publishes only this module's events."""
    with migrated_database(data_dir, "acl") as url:
        yield url


@pytest.fixture
def worker_app(users: Users, acl_database: str, services: Services) -> Iterator[Container]:
    """The worker's bus and relay, talking to Redis as the file's `quota-worker`."""
    url = users.url("quota-worker")
    settings = Settings(
        database_url=acl_database, redis_url=url, broker_url=url,
        events_stream=users.stream, data_dir=services.data_dir,
    )  # fmt: skip
    container = build(settings)
    yield container
    container.database.dispose()


def test_quota_events_as_the_consumer_user_reads_what_the_worker_user_published(
    users: Users, worker_app: Container, services: Services
) -> None:
    # The relay as the worker runs it: woken by each commit (PUBLISH), XADDing the events.
    stop = threading.Event()
    relay = threading.Thread(target=worker_app.relay().run, args=(stop, worker_app.redis))
    relay.start()
    try:
        shop = Shop(worker_app)
        mail, account = shop.provision()
        order = shop.request(mail, account, expected=10, new=20)
        shop.send(order)
        shop.send(shop.payment(order.order_id))
        assert wait_until(lambda: users.admin.xlen(users.stream) == 2, 30), "nothing published"
    finally:
        stop.set()
        relay.join(30)
    worker = users.client("quota-worker")
    (_, first), (_, applied) = worker.xrange(users.stream)
    # Then, as the worker user still: the accepted change again (as after a relay
    # crash), an older version of the change, and an expiry.
    worker.xadd(users.stream, first)
    publish(users.url("quota-worker"), users.stream, [quota_changed(mail, 1), expired(mail)])

    events = QuotaEvents(users.url("dashboard"), users.stream)
    handled: list[Event] = []
    consume(services, users.stream, handled.append, 5, events=events)
    assert [e.type for e in handled] == [
        "mail.quota.change.accepted", "mail.quota.changed", "mail.quota.change.expired",
    ]  # fmt: skip
    changed = handled[1].data
    assert isinstance(changed, QuotaChangedData) and changed.service_mail_id == mail
    assert handled[1].subject == applied["subject"] == mail
    assert events.skipped == {}
    # What a consumer's monitoring reads, and QuotaEvents' own bookkeeping.
    reader = users.client("dashboard")
    assert reader.xpending(users.stream, "dashboard")["pending"] == 0
    assert [g["name"] for g in reader.xinfo_groups(users.stream)] == ["dashboard"]
    assert users.admin.hget(f"{users.stream}:dashboard:versions", mail) == str(changed.version)
    seen = f"{users.stream}:dashboard:seen:{handled[0].id}"
    assert 0 < users.admin.ttl(seen) <= events.remember_seconds
    assert users.denials("quota-worker") == [] and users.denials("dashboard") == []


def stream_with_one_entry(users: Users) -> str:
    publish(users.url("quota-worker"), users.stream, [expired(new_id("sm"))])
    users.client("dashboard").xgroup_create(users.stream, "dashboard", id="0")
    (entry_id, _), *_ = users.admin.xrange(users.stream)
    return str(entry_id)


WRITES = {
    "xadd": ["XADD", "{stream}", "*", "type", "mail.quota.changed", "event", "{{}}"],
    "xdel": ["XDEL", "{stream}", "{entry}"],
    "xtrim": ["XTRIM", "{stream}", "MAXLEN", "0"],
    "xsetid": ["XSETID", "{stream}", "{entry}"],
    "xgroup-setid": ["XGROUP", "SETID", "{stream}", "dashboard", "$"],
    "xgroup-destroy": ["XGROUP", "DESTROY", "{stream}", "dashboard"],
    "del": ["DEL", "{stream}"],
    "unlink": ["UNLINK", "{stream}"],
    "set": ["SET", "{stream}", "x"],
    "expire": ["EXPIRE", "{stream}", "1"],
    "rename": ["RENAME", "{stream}", "{stream}:dashboard:x"],
    "copy-over": ["COPY", "{stream}:dashboard:versions", "{stream}", "REPLACE"],
    "eval": ["EVAL", "return redis.call('XADD', KEYS[1], '*', 'a', '1')", "1", "{stream}"],
    "publish-wake": ["PUBLISH", "{stream}:wake", ""],
    "another-groups-versions": ["HSET", "{stream}:billing:versions", "sm-1", "2147483647"],
}


@pytest.mark.parametrize("command", list(WRITES.values()), ids=list(WRITES))
def test_the_consumer_user_may_not_write_the_stream(users: Users, command: list[str]) -> None:
    entry = stream_with_one_entry(users)
    args = [a.format(stream=users.stream, entry=entry) for a in command]
    with pytest.raises(redis.exceptions.NoPermissionError):
        users.client("dashboard").execute_command(*args)
    assert users.admin.xlen(users.stream) == 1 and users.admin.ttl(users.stream) == -1


SCRIPTS = [
    "return redis.call('XADD', KEYS[1], '*', 'a', '1')",
    "return redis.call('DEL', KEYS[1])",
    "return redis.call('SET', KEYS[1], 'x')",
]


def test_the_consumer_users_scripts_run_with_its_own_rights(users: Users) -> None:
    # EVALSHA and SCRIPT LOAD are QuotaEvents' own; a script of the consumer's is
    # refused every command the consumer is refused.
    stream_with_one_entry(users)
    consumer = users.client("dashboard")
    for script in SCRIPTS:
        sha = consumer.script_load(script)
        with pytest.raises(redis.ResponseError, match="can't run this command"):
            consumer.evalsha(sha, 1, users.stream)
    assert users.admin.xlen(users.stream) == 1


def test_the_consumer_users_bookkeeping_commands_cannot_damage_the_stream(
    users: Users,
) -> None:
    # SETNX, GETEX and HSET are the consumer's (its seen ids and versions): on the
    # stream's key they change nothing, where SET or EXPIRE would replace or expire it.
    stream_with_one_entry(users)
    consumer = users.client("dashboard")
    assert consumer.setnx(users.stream, "1") is False
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        consumer.getex(users.stream, ex=1)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        consumer.hset(users.stream, "sm-1", "2147483647")
    assert users.admin.type(users.stream) == "stream"
    assert users.admin.xlen(users.stream) == 1 and users.admin.ttl(users.stream) == -1


# Probes that change nothing if they were allowed, beyond this test's own user.
ADMIN = {
    "acl-setuser": ["ACL", "SETUSER", "{me}", "+@admin"],
    "acl-list": ["ACL", "LIST"],
    "config-get": ["CONFIG", "GET", "maxmemory"],
    "client-list": ["CLIENT", "LIST"],
    "keys": ["KEYS", "{stream}*"],
}


@pytest.mark.parametrize("command", list(ADMIN.values()), ids=list(ADMIN))
def test_the_worker_user_may_not_administer_the_server(users: Users, command: list[str]) -> None:
    args = [a.format(me=users.names["quota-worker"], stream=users.stream) for a in command]
    with pytest.raises(redis.exceptions.NoPermissionError):
        users.client("quota-worker").execute_command(*args)


def test_the_checkout_user_publishes_only_to_its_queue(users: Users) -> None:
    # A plain Celery producer, as the contract gives it: send_task(NAME, kwargs, queue).
    checkout = Celery(
        "checkout",
        broker=with_login(users.broker_url, users.names["checkout"], users.passwords["checkout"]),
        set_as_current=False,
    )
    payload = VALID["quota.request_change"]
    try:
        checkout.send_task("quota.request_change", kwargs=payload, queue=users.queue, retry=False)
        with pytest.raises(OperationalError, match="no permissions"):
            checkout.send_task(
                "quota.payment_confirmed", kwargs=VALID["quota.payment_confirmed"],
                queue=new_id("quota.payments.acl"), retry=False,
            )  # fmt: skip
    finally:
        checkout.close()
    assert users.admin.llen(users.queue) == 1
    # Refused: the other queue's keys, and nothing the publish to its own queue needs.
    assert {e["reason"] for e in users.denials("checkout")} == {"key"}
    with pytest.raises(redis.exceptions.NoPermissionError):
        users.client("checkout").execute_command("XADD", users.stream, "*", "a", "1")


def test_redis_server_loads_the_file_as_compose_gives_it() -> None:
    # --aclfile, as the compose file starts Redis: no default user, the file's passwords.
    directory = short_tmp("qt-acl-")
    sock = directory / "redis.sock"
    server = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--dir", str(directory), "--aclfile", str(ACL_FILE), "--logfile", "redis.log"],
        start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_until(lambda: sock.exists() or server.poll() is not None, 15)
        assert server.poll() is None, (directory / "redis.log").read_text()
        anyone = redis.Redis(unix_socket_path=str(sock), retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.AuthenticationError):
            anyone.ping()
        rules = acl_file()
        password = next(r[1:] for r in rules["quota-worker"] if r.startswith(">"))
        worker = redis.Redis(unix_socket_path=str(sock), username="quota-worker", password=password)
        assert worker.xadd("quota.events", {"event": "{}"})
    finally:
        server.terminate()
        server.wait(15)
        shutil.rmtree(directory, ignore_errors=True)

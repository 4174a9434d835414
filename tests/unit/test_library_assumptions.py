"""What our adapters assume of the libraries whose internals they use (no service needed).

Each test names one assumption of `worker/adapters/transport.py` (kombu, redis-py),
`worker/adapters/deliveries.py` (kombu's stored envelope), `worker/adapters/pipeline.py`
(SQLAlchemy, psycopg) or `worker/entrypoints/consumer.py` (Celery). On a new version of a
library, these and the integration tests named in `worker/adapters/versions.py` say
whether its range may be widened.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import re
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu import transport as kombu_transport
from kombu.transport import pyamqp, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.scheduling import cycle_by_name
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from worker.adapters import deliveries, pipeline, transport, transport_amqp
from worker.adapters import tables as t

ROOT = Path(__file__).resolve().parents[2]


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


# kombu's Redis transport (worker/adapters/transport.py)


@pytest.mark.parametrize(
    ("ours", "kombus"),
    [
        (transport.Channel._brpop_start, kombu_redis.Channel._brpop_start),
        (transport.Channel._brpop_read, kombu_redis.Channel._brpop_read),
        (transport.QoS.append, kombu_redis.QoS.append),
    ],
    ids=["_brpop_start", "_brpop_read", "QoS.append"],
)
def test_our_overrides_take_what_kombu_passes_its_own(
    ours: Callable[..., Any], kombus: Callable[..., Any]
) -> None:
    assert _parameters(ours) == _parameters(kombus)


def test_kombus_redis_channel_has_the_private_parts_the_transport_calls() -> None:
    assert _parameters(kombu_redis.Channel._q_for_pri) == ["self", "queue", "pri"]
    assert _parameters(kombu_redis.Channel._flush_brpop_reauth) == ["self"]
    assert _parameters(virtual.Transport._deliver) == ["self", "message", "queue"]
    assert _parameters(virtual.QoS.append) == ["self", "message", "delivery_tag"]
    for attribute in ("_in_poll", "_brpop_sent_at", "global_keyprefix", "sep"):
        assert hasattr(kombu_redis.Channel, attribute), attribute
    assert isinstance(kombu_redis.Channel.from_transport_options, tuple)


def test_kombus_redis_qos_names_its_unacknowledged_record_after_its_channel() -> None:
    """The pop script writes the hash and index the channel names, which kombu's QoS reads."""
    qos = kombu_redis.QoS.__new__(kombu_redis.QoS)
    qos.channel = _Channel("")
    assert (qos.unacked_key, qos.unacked_index_key) == ("unacked", "unacked_index")


def test_a_queue_is_one_list_per_priority_step_and_each_names_its_queue_again() -> None:
    """queue_lists (operators' depths) and _brpop_read's rsplit (the queue a pop came from)."""
    channel = kombu_redis.Channel.__new__(kombu_redis.Channel)  # naming needs no connection
    assert list(channel.priority_steps) == [0, 3, 6, 9]
    lists = transport.queue_lists(channel, "quota.orders")
    assert "quota.orders" in lists
    assert len(lists) == len(channel.priority_steps)
    assert {key.rsplit(channel.sep, 1)[0] for key in lists} == {"quota.orders"}


def test_kombus_redis_channel_keeps_a_queue_cycle_to_consume_and_rotate() -> None:
    assert "self._queue_cycle = cycle_by_name(" in inspect.getsource(kombu_redis.Channel.__init__)
    cycle = cycle_by_name(kombu_redis.Channel.queue_order_strategy)()
    assert _parameters(cycle.consume) == ["n"]
    assert _parameters(cycle.rotate) == ["last_used"]


class _Pipe:
    """Just what kombu's restore calls on a Redis pipeline."""

    def __init__(self, record: str) -> None:
        self.record = record

    def hget(self, key: str, tag: str) -> str:
        return self.record

    def multi(self) -> None:
        pass

    def zrem(self, key: str, tag: str) -> _Pipe:
        return self

    def hdel(self, key: str, tag: str) -> _Pipe:
        return self


class _Channel:
    unacked_key, unacked_index_key = "unacked", "unacked_index"

    def __init__(self, record: str) -> None:
        self.pipe = _Pipe(record)
        self.restored: list[tuple[Any, ...]] = []

    @contextlib.contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        outer = self

        class Client:
            def transaction(self, function: Callable[[_Pipe], None], *keys: str) -> None:
                function(outer.pipe)

        yield Client()

    def _do_restore_message(self, *args: Any) -> None:
        self.restored.append(args[:3])


def test_kombus_restore_reads_the_record_the_pop_script_writes() -> None:
    """The script records `[item, "", queue]`: kombu restores it to that queue, as taken."""
    item = {"body": "e30=", "properties": {"delivery_tag": "tag-1"}, "headers": {}}
    raw = json.dumps(item)
    record = "[" + raw + ',"",' + json.dumps("quota.orders") + "]"  # as POP_AND_RECORD builds it
    assert "'[' .. item .. ',\"\",' .. cjson.encode(ARGV[3 + j]) .. ']'" in transport.POP_AND_RECORD
    channel = _Channel(record)
    qos = kombu_redis.QoS.__new__(kombu_redis.QoS)
    qos.channel = channel
    qos.restore_by_tag("tag-1")
    assert channel.restored == [(item, "", "quota.orders")]


def test_kombus_stored_envelope_is_what_our_reader_and_pop_script_expect() -> None:
    """A message kombu 5.7 publishes (serialized as its Redis transport stores it) is read
    as a kombu message, not refused as unreadable."""
    queue = Queue("q", Exchange("q", type="direct"), routing_key="q")
    with Connection("memory://") as conn:
        conn.Producer().publish(
            {"order_id": "ord-1"},
            exchange=queue.exchange,
            routing_key="q",
            declare=[queue],
            headers={"id": "m-1", "task": "quota.request_change"},
            serializer="json",
        )
        stored = conn.default_channel._get("q")
    assert isinstance(stored["properties"]["delivery_tag"], str)
    assert isinstance(stored["headers"], dict)
    assert stored["properties"]["body_encoding"] == "base64"
    message = deliveries.read_redis_item(json.dumps(stored).encode(), "quota.orders", 1 << 20)
    assert deliveries.REFUSED_KEY not in message["properties"]
    assert message["properties"]["delivery_info"][deliveries.QUEUE_KEY] == "quota.orders"


def test_transports_are_registered_by_alias_and_kombu_caches_resolutions() -> None:
    assert "redis" in kombu_transport.TRANSPORT_ALIASES
    assert isinstance(kombu_transport._transport_cache, dict)


# redis-py under kombu (worker/adapters/transport.py)


def test_redis_py_reads_a_reply_on_a_given_connection_as_kombu_does() -> None:
    assert _parameters(redis.Redis.parse_response)[:3] == ["self", "connection", "command_name"]
    assert "args" in _parameters(redis.connection.Connection.send_command)
    assert issubclass(redis.exceptions.NoScriptError, redis.exceptions.ResponseError)


# kombu's py-amqp transport (worker/adapters/transport_amqp.py)


def test_our_amqp_overrides_take_what_kombu_passes_its_own() -> None:
    ours = transport_amqp.Message.__init__
    assert _parameters(ours)[:3] == _parameters(pyamqp.Message.__init__)[:3]
    assert _parameters(pyamqp.Channel.basic_consume)[:3] == ["self", "queue", "consumer_tag"]
    assert pyamqp.Channel.Message is pyamqp.Message
    assert pyamqp.Connection.Channel is pyamqp.Channel
    assert pyamqp.Transport.Connection is pyamqp.Connection


# SQLAlchemy's compiler and psycopg's pipeline (worker/adapters/pipeline.py)

DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]


def test_the_psycopg_dialect_is_named_as_the_pipeline_recognises_it() -> None:
    """StatementQueue pipelines exactly postgresql + psycopg; psycopg takes pyformat SQL."""
    assert (DIALECT.name, DIALECT.driver) == ("postgresql", "psycopg")
    assert DIALECT.paramstyle == "pyformat"


def test_construct_params_gives_every_placeholder_of_the_sql_a_processed_value() -> None:
    """The bound values are keyed as the SQL names them, each through its type's processor."""
    row = {
        "service_mail_id": "sm-1",
        "address": "a@example.ch",
        "created_at": datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
    }
    compiled = pipeline._compile(insert(t.addresses), DIALECT, tuple(row))
    values = pipeline._bound(compiled, row)
    assert set(values) == set(re.findall(r"%\((\w+)\)s", compiled.sql))
    assert values["created_at"] == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert values["created_at"].tzinfo is UTC


def test_construct_params_keeps_a_statements_own_literals_beside_the_given_values() -> None:
    statement = select(t.addresses.c.address).where(
        t.addresses.c.service_mail_id == bindparam("id"), t.addresses.c.address != "x@example.ch"
    )
    compiled = pipeline._compile(statement, DIALECT, ("id",))
    values = pipeline._bound(compiled, {"id": "sm-1"})
    assert sorted(values.values()) == ["sm-1", "x@example.ch"]
    assert set(values) == set(re.findall(r"%\((\w+)\)s", compiled.sql))


def test_bind_names_map_each_bind_parameter_to_its_name_in_the_sql() -> None:
    compiled: Any = select(t.addresses).where(t.addresses.c.address == bindparam("a"))
    compiled = compiled.compile(dialect=DIALECT)
    assert isinstance(compiled.bind_names, dict)
    assert {name for name in compiled.bind_names.values()} == {"a"}


def test_result_processors_come_from_the_columns_as_sqlalchemy_would_apply_them() -> None:
    compiled = pipeline._compile(select(t.addresses.c.created_at), DIALECT, ())
    (processor,) = compiled.results
    assert processor is not None
    assert processor(datetime(2026, 1, 1, 10)) == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_sqlalchemys_error_wrapping_takes_what_the_pipeline_passes() -> None:
    parameters = _parameters(DBAPIError.instance)
    assert parameters[:4] == ["statement", "params", "orig", "dbapi_base_err"]
    assert {"connection_invalidated", "dialect"} <= set(parameters)
    assert _parameters(DIALECT.is_disconnect)[:3] == ["e", "connection", "cursor"]


def test_psycopg_connections_have_a_pipeline_and_report_their_transaction_status() -> None:
    assert _parameters(psycopg.Connection.pipeline) == ["self"]
    assert callable(psycopg.Cursor.executemany)
    assert isinstance(psycopg.ConnectionInfo.transaction_status, property)
    assert psycopg.pq.TransactionStatus.IDLE.name == "IDLE"


# Celery's worker consumer (worker/entrypoints/consumer.py)


def test_our_consumer_overrides_take_what_celery_passes_its_own() -> None:
    from celery.worker.consumer import Consumer

    from worker.entrypoints.consumer import QuotaConsumer

    for name in ("on_decode_error", "on_unknown_message", "on_unknown_task", "on_invalid_task"):
        assert _parameters(getattr(QuotaConsumer, name)) == _parameters(getattr(Consumer, name))


def test_celerys_task_handler_calls_the_hooks_our_consumer_overrides() -> None:
    """Celery's handler reaches them through self, so a refusal lands in our dead letters."""
    from celery.app.defaults import DEFAULTS
    from celery.worker.consumer import Consumer

    names: set[str] = set()
    codes = [Consumer.create_task_handler.__code__]
    while codes:  # the handler, and the function it returns
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    for hook in ("on_decode_error", "on_unknown_message", "on_unknown_task", "on_invalid_task"):
        assert hook in names
    assert "worker_consumer" in DEFAULTS


# Each library's internals in one module

OWNERS = {
    r"_brpop_\w*|_q_for_pri|priority_steps|_transport_cache|_flush_brpop_reauth": (
        "worker/adapters/transport.py"
    ),
    r"bind_names|construct_params|bind_processor|result_processor": "worker/adapters/pipeline.py",
    r"create_task_handler|celery\.worker(\..*)?": "worker/entrypoints/consumer.py",
}


def _names(source: str) -> set[str]:
    """The attributes, functions and modules a module's code names (not its docstrings)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.Name):
            names.add(node.name if isinstance(node, ast.FunctionDef) else node.id)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("pattern", OWNERS)
def test_each_librarys_internals_are_used_in_one_module_only(pattern: str) -> None:
    using = {
        path.relative_to(ROOT).as_posix()
        for package in ("domain", "events", "worker", "bench")
        for path in (ROOT / package).rglob("*.py")
        if any(re.fullmatch(pattern, name) for name in _names(path.read_text(encoding="utf-8")))
    }
    assert using == {OWNERS[pattern]}

"""The consumer's batcher on its own: how messages wait, coalesce and are acknowledged.

The pool here only records what it was given and lets the test answer for it, as
Celery's pool calls back on the consumer's event loop; the real pool, broker and
database are in tests/e2e/test_batches.py and the reliability runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.entrypoints.batching import Batcher, run_batch


@dataclass
class Message:
    id: str
    task: str = "mail.address_created"
    acked: bool = False
    headers: dict[str, Any] = field(init=False)
    body: bytes = b"[[], {}, {}]"
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    channel: Any = None

    def __post_init__(self) -> None:
        self.headers = {"id": self.id, "task": self.task}

    def ack(self) -> None:
        assert not self.acked, "acknowledged twice"
        self.acked = True


@dataclass
class Pool:
    jobs: list[tuple[list[Any], Any, Any]] = field(default_factory=list)

    def apply_async(self, target: Any, args: tuple[Any, ...], **options: Any) -> None:
        assert target is run_batch
        self.jobs.append((args[0], options["callback"], options["error_callback"]))


@dataclass
class Events:
    enabled: bool = True
    sent: list[tuple[str, str]] = field(default_factory=list)

    def send(self, kind: str, uuid: str, **fields: Any) -> None:
        self.sent.append((kind, uuid))


def _batcher(slots: int = 1, batch_max: int = 3) -> tuple[Batcher, Pool, list[Any], Events]:
    pool, alone, events = Pool(), list[Any](), Events()
    return (
        Batcher(pool, alone.append, events, batch_max=batch_max, slots=slots),
        pool,
        alone,
        events,
    )


def _ids(job: tuple[list[Any], Any, Any]) -> list[str]:
    return [item[1] for item in job[0]]


def test_an_idle_worker_sends_a_message_at_once_and_what_comes_meanwhile_coalesces() -> None:
    batcher, pool, _alone, _events = _batcher(slots=1, batch_max=3)
    first = Message("m1")
    batcher.add(first)
    assert [_ids(j) for j in pool.jobs] == [["m1"]]  # no waiting on a timer
    rest = [Message(f"m{n}") for n in range(2, 7)]
    for m in rest:
        batcher.add(m)
    assert len(pool.jobs) == 1  # the one slot is busy: they wait
    pool.jobs[0][1](["counted"])  # the first batch committed
    assert first.acked
    assert [_ids(j) for j in pool.jobs[1:]] == [["m2", "m3", "m4"]]  # up to batch_max
    pool.jobs[1][1](["counted", "known", "counted"])
    assert [_ids(j) for j in pool.jobs[2:]] == [["m5", "m6"]]
    assert [m.acked for m in rest] == [True, True, True, False, False]


def test_nothing_is_acknowledged_before_the_commit_and_each_message_has_its_task_events() -> None:
    batcher, pool, _alone, events = _batcher(slots=2)
    messages = [Message("a"), Message("b")]
    for m in messages:
        batcher.add(m)
    assert not any(m.acked for m in messages)
    for job in pool.jobs:
        job[1](["counted"])
    assert all(m.acked for m in messages)
    assert sorted(events.sent) == [
        ("task-received", "a"), ("task-received", "b"),
        ("task-succeeded", "a"), ("task-succeeded", "b"),
    ]  # fmt: skip


def test_a_message_the_batch_could_not_take_goes_through_celery_alone_unacknowledged() -> None:
    batcher, pool, alone, _events = _batcher(slots=1)
    batcher.add(Message("busy"))
    good, bad = Message("good"), Message("bad")
    batcher.add(good)
    batcher.add(bad)
    pool.jobs[0][1](["counted"])
    pool.jobs[1][1](["counted", None])
    assert good.acked and not bad.acked
    assert alone == [bad]  # Celery's own path acknowledges it when it is done with it


class Unreachable(Message):
    def ack(self) -> None:  # the broker went away between the commit and the ack
        raise ConnectionError("Redis is gone")


def test_a_failed_acknowledgement_still_hands_the_rest_to_celery_and_frees_the_slot() -> None:
    batcher, pool, alone, events = _batcher(slots=1)
    batcher.add(Message("busy"))
    committed, refused, later = Unreachable("committed"), Message("refused"), Message("later")
    batcher.add(committed)
    batcher.add(refused)
    pool.jobs[0][1](["counted"])
    batcher.add(later)
    pool.jobs[1][1](["counted", None])  # the ack of "committed" raises
    assert alone == [refused]  # not skipped by the failure before it
    assert ("task-succeeded", "committed") not in events.sent  # it comes back instead
    assert [_ids(j) for j in pool.jobs[2:]] == [["later"]]  # the slot is free again


def test_a_failed_hand_off_does_not_stop_the_others() -> None:
    pool, events = Pool(), Events()
    handed: list[Any] = []

    def one_by_one(message: Any) -> None:
        if message.id == "first":
            raise ConnectionError("Celery could not take it")
        handed.append(message)

    batcher = Batcher(pool, one_by_one, events, batch_max=3, slots=1)
    for name in ("busy", "first", "second"):
        batcher.add(Message(name))
    pool.jobs[0][1](["counted"])
    pool.jobs[1][1]([None, None])  # one batch of two that could take neither
    assert [m.id for m in handed] == ["second"]


def test_a_lost_batch_goes_through_celery_one_by_one() -> None:
    batcher, pool, alone, _events = _batcher(slots=1)
    messages = [Message("x"), Message("y")]
    for m in messages:
        batcher.add(m)
    pool.jobs[0][2](RuntimeError("the pool process died"))
    assert alone == [messages[0]] and not messages[0].acked
    assert [_ids(j) for j in pool.jobs[1:]] == [["y"]]  # the slot is free again


def test_a_repeated_id_waits_for_the_next_batch() -> None:
    batcher, pool, _alone, _events = _batcher(slots=1, batch_max=5)
    batcher.add(Message("busy"))
    for m in [Message("r"), Message("r"), Message("s")]:
        batcher.add(m)
    pool.jobs[0][1](["counted"])
    assert _ids(pool.jobs[1]) == ["r", "s"]
    pool.jobs[1][1](["counted", "counted"])
    assert _ids(pool.jobs[2]) == ["r"]


def test_messages_delivered_in_one_turn_of_the_event_loop_go_in_one_batch() -> None:
    """One pop of several delivers them one after the other in the same turn: on an
    event loop the batcher hands them out at its end, together, and never later."""
    soon: list[Any] = []
    pool, alone, events = Pool(), list[Any](), Events()
    batcher = Batcher(pool, alone.append, events, batch_max=3, slots=2, defer=soon.append)
    for n in range(4):
        batcher.add(Message(f"m{n}"))
    assert pool.jobs == [] and len(soon) == 1  # one hand-out due, not one per message
    soon.pop()()  # the end of the turn: spread over the two free processes
    assert [_ids(j) for j in pool.jobs] == [["m0", "m1"], ["m2", "m3"]]
    batcher.add(Message("m4"))
    assert len(soon) == 1  # due again: the next turn hands it out
    soon.pop()()
    assert len(pool.jobs) == 2  # both slots busy: it waits for a batch to end
    pool.jobs[0][1](["counted"] * 2)
    assert [_ids(j) for j in pool.jobs[2:]] == [["m4"]]


def test_a_busy_worker_fills_whole_batches_a_quiet_one_runs_messages_side_by_side() -> None:
    batcher, pool, _alone, _events = _batcher(slots=3, batch_max=4)
    soon: list[Any] = []
    batcher._defer = soon.append
    for n in range(3):
        batcher.add(Message(f"q{n}"))
    soon.pop()()
    assert [_ids(j) for j in pool.jobs] == [["q0"], ["q1"], ["q2"]]  # three free processes
    for n in range(9):
        batcher.add(Message(f"b{n}"))
    soon.pop()()
    assert len(pool.jobs) == 3  # every process busy: they wait
    pool.jobs[0][1](["counted"])  # one process free: a whole batch
    assert [_ids(j) for j in pool.jobs[3:]] == [["b0", "b1", "b2", "b3"]]


def _about(message_id: str, mail: str) -> Message:
    return Message(message_id, body=b'[[], {"service_mail_id": "%s"}, {}]' % mail.encode())


def test_one_service_mails_messages_are_never_in_two_batches_at_once() -> None:
    batcher, pool, _alone, _events = _batcher(slots=4, batch_max=10)
    created, other, deleted = (
        _about("created", "sm1"),
        _about("other", "sm2"),
        _about("deleted", "sm1"),
    )
    for m in (created, other, deleted):
        batcher.add(m)
    # Free processes spread the rest, but "deleted" never runs beside "created".
    assert [_ids(j) for j in pool.jobs] == [["created"], ["other"]]
    pool.jobs[1][1](["counted"])
    assert len(pool.jobs) == 2  # sm1 is still in flight: "deleted" waits for it
    pool.jobs[0][1](["counted"])
    assert [_ids(j) for j in pool.jobs[2:]] == [["deleted"]]


def test_waiting_messages_of_one_service_mail_go_together_in_their_order() -> None:
    batcher, pool, _alone, _events = _batcher(slots=1, batch_max=10)
    batcher.add(_about("busy", "sm0"))
    for name in ("c1", "d1", "c2"):
        batcher.add(_about(name, "sm1"))
    pool.jobs[0][1](["counted"])
    assert [_ids(j) for j in pool.jobs[1:]] == [["c1", "d1", "c2"]]


def test_a_body_is_decoded_once_in_the_consumer_and_the_pool_gets_its_kwargs() -> None:
    batcher, pool, _alone, _events = _batcher(slots=1, batch_max=10)
    batcher.add(_about("busy", "sm0"))
    batcher.add(_about("good", "sm1"))
    batcher.add(Message("positional", body=b'[["sm1"], {}, {}]'))
    batcher.add(Message("garbage", body=b"not json"))
    assert pool.jobs[0][0] == [("mail.address_created", "busy", {"service_mail_id": "sm0"})]
    pool.jobs[0][1](["counted"])
    assert pool.jobs[1][0] == [
        ("mail.address_created", "good", {"service_mail_id": "sm1"}),
        ("mail.address_created", "positional", None),
        ("mail.address_created", "garbage", None),
    ]


def test_a_batch_of_bodies_that_are_not_celerys_touches_no_database() -> None:
    # None for each: the consumer sends them one by one, whose checks say what is wrong.
    items = [("mail.address_created", "a", None), ("quota.request_change", "b", None)]
    assert run_batch(items) == [None, None]
    assert run_batch([("mail.address_created", "c", {"service_mail_id": 7})]) == [None]

"""Operator commands never hand stored data to the terminal as commands (CONTRACT.md, the envelope).

A task name, message id, body or reason holding OSC 52 (writes the clipboard),
a clear-screen, a C1 CSI or a bidi override is printed escaped, and a stored
string is never read as rich markup.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import create_engine

from tests.conftest import Services
from tests.helpers import new_id
from worker.adapters import tables as t
from worker.bootstrap import utcnow

pytestmark = pytest.mark.e2e

OSC52 = "\x1b]52;c;aGk=\x07"
CLEAR = "\x1b[2J"
RESET = "\x1bc"
CSI_C1 = "\x9b"
RLO = "\u202e"
HOSTILE = OSC52 + CLEAR + RESET + CSI_C1 + RLO
# What the operator sees instead.
SHOWN = ["\\x1b]52;c;aGk=\\x07", "\\x1b[2J", "\\x1bc", "\\x9b", "\\u202e"]
# Rich markup and an emoji code: shown as written, never interpreted.
MARKUP = "[bold red]boo[/bold red] [link=https://e.x]x[/link] :smile:"

# A byte or character that makes a terminal act: C0 but the newline ending a
# line, DEL, C1, and the bidi controls.
_FORBIDDEN = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def assert_inert(output: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in _FORBIDDEN.findall(output)})
    assert not found, f"control characters reached the terminal: {found}\n{output!r}"


def _env(services: Services) -> dict[str, str]:
    env = services.worker_env(QUOTA_LOG_LEVEL="WARNING")
    for forcing in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES"):
        env.pop(forcing, None)
    return env


def cli(services: Services, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, its output decoded strictly (a raw C1 shows as U+0080-U+009F)."""
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=_env(services),
        capture_output=True,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8"),
        result.stderr.decode("utf-8"),
    )


# rich styles its own headers and borders on a terminal: those SGR sequences are fine.
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def in_terminal(services: Services, *args: str) -> tuple[int, str]:
    """The command on a pseudo-terminal 200 columns wide (rich and click both see a tty)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", *args],
        env={**_env(services), "TERM": "xterm-256color"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = process.wait(timeout=30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    text = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    return code, _SGR.sub("", text)


def assert_shown_escaped(output: str) -> None:
    assert_inert(output)
    for escaped in SHOWN:
        assert escaped in output, f"{escaped!r} not shown:\n{output}"


@dataclass(frozen=True)
class Stored:
    task: str
    message_id: str
    letter_id: int
    discarded_id: int
    request_id: str
    order_id: str
    service_mail_id: str


@pytest.fixture(scope="module")
def stored(services: Services) -> Iterator[Stored]:
    """Hostile dead letters and a hostile change trail, as a producer (or a bug) could leave."""
    run = new_id("evil")
    task = f"quota.{HOSTILE}{run}"[:64]
    message_id = f"msg-{HOSTILE}-{run}"
    now = utcnow()
    engine = create_engine(services.database_url)
    with engine.begin() as conn:
        ids = []
        for n, body in enumerate([f'{{"args": ["{HOSTILE}"], "kwargs": {{}}}}', HOSTILE + MARKUP]):
            row: dict[str, Any] = {
                "message_id": f"{message_id}-{n}",
                "task": task,
                "body": body,
                "content_type": f"application/json{CLEAR}",
                "error": f"invalid_message: {HOSTILE} {MARKUP}",
                "created_at": now,
                "status": "stored",
            }
            if "body_size" in t.dead_letters.c:  # the stored body's full size and hash
                raw = body.encode()
                row.update(body_size=len(raw), body_sha256=hashlib.sha256(raw).hexdigest())
            inserted = conn.execute(t.dead_letters.insert().values(**row))
            ids.append(int(inserted.inserted_primary_key[0]))
        order_id = new_id("ord")
        request_id = f"req-{HOSTILE}-{run}"
        service_mail_id = f"sm-{HOSTILE}-{run}"[:64]
        # Inbound ids must match a pattern: these rows stand for what a bug, an older
        # version or a hand-edit could leave, and operator reasons are free text anyway.
        conn.execute(
            t.quota_changes.insert().values(
                request_id=request_id, order_id=order_id, account_id=f"acc-{HOSTILE}",
                service_mail_id=service_mail_id, expected_address_limit=10,
                new_address_limit=20, amount_due=1500, currency="CHF", requested_at=now,
                state="cancelled", reason=f"x{CLEAR}{CSI_C1}", detail=f"{HOSTILE} {MARKUP}",
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
        conn.execute(
            t.transitions.insert().values(
                request_id=request_id, from_state="received", to_state="cancelled",
                reason=f"customer said {HOSTILE} {MARKUP}", message_id=message_id, at=now,
            )
        )  # fmt: skip
        conn.execute(
            t.processed_messages.insert().values(
                message_id=f"{message_id}-trail", task=task, outcome="cancelled",
                order_id=order_id, processed_at=now,
            )
        )  # fmt: skip
    assert len(ids) == 2
    yield Stored(task, message_id, ids[0], ids[1], request_id, order_id, service_mail_id)
    # Handled: later status and metrics checks of the session do not count them.
    with engine.begin() as conn:
        conn.execute(
            t.dead_letters.update()
            .where(t.dead_letters.c.id.in_(ids))
            .values(status="discarded", resolution="test data")
        )
    engine.dispose()


def test_dead_letters_list_shows_hostile_task_and_error_escaped(
    services: Services, stored: Stored
) -> None:
    result = cli(services, "dead-letters", "list", "--task", stored.task)
    assert result.returncode == 0, result.stderr
    assert_shown_escaped(result.stdout)
    assert "[bold red]boo[/bold red]" in result.stdout and ":smile:" in result.stdout


def test_dead_letters_show_prints_body_and_ids_escaped(services: Services, stored: Stored) -> None:
    for letter in (stored.letter_id, stored.discarded_id):
        result = cli(services, "dead-letters", "show", str(letter))
        assert result.returncode == 0, result.stderr
        assert_inert(result.stdout)
        shown = json.loads(result.stdout)
        assert shown["task"] == stored.task and shown["message_id"].startswith(stored.message_id)
        assert "\\u001b]52;c;aGk=\\u0007" in result.stdout and "\\u009b" in result.stdout


def test_json_output_holds_no_raw_control_character(services: Services, stored: Stored) -> None:
    for args in (
        ["dead-letters", "list", "--task", stored.task, "--json"],
        ["requests", "show", stored.order_id, "--json"],
        ["requests", "list", "--service-mail", stored.service_mail_id, "--json"],
        ["status", "--json", "--no-worker-ok", "--max-dead-letters", "1000000"],
    ):
        result = cli(services, *args)
        assert result.returncode == 0, result.stderr
        assert_inert(result.stdout)
        json.loads(result.stdout)


def test_status_shows_stored_dead_letter_tasks_escaped(services: Services, stored: Stored) -> None:
    result = cli(services, "status", "--no-worker-ok", "--max-dead-letters", "1000000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_shown_escaped(result.stdout)


def test_requests_show_and_list_print_a_hostile_trail_escaped(
    services: Services, stored: Stored
) -> None:
    shown = cli(services, "requests", "show", stored.order_id)
    assert shown.returncode == 0, shown.stderr
    assert_shown_escaped(shown.stdout)
    assert "[bold red]boo[/bold red]" in shown.stdout and "[link=" in shown.stdout
    listed = cli(services, "requests", "list", "--service-mail", stored.service_mail_id)
    assert listed.returncode == 0, listed.stderr
    assert_shown_escaped(listed.stdout)


def test_refusals_quoting_stored_data_are_escaped(services: Services, stored: Stored) -> None:
    not_awaiting = cli(services, "expire", stored.order_id, "--reason", "test")
    assert not_awaiting.returncode != 0 and "not awaiting payment" in not_awaiting.stderr
    assert_shown_escaped(not_awaiting.stderr)

    reason = f"junk {HOSTILE}"
    discard = cli(services, "dead-letters", "discard", str(stored.discarded_id), "--reason", reason)
    assert discard.returncode == 0, discard.stderr
    replay = cli(
        services, "dead-letters", "replay", str(stored.discarded_id), str(stored.letter_id)
    )
    assert replay.returncode == 1 and "was discarded" in replay.stderr
    assert_shown_escaped(replay.stderr)
    assert_inert(replay.stdout)


def test_on_a_terminal_only_the_commands_own_styling_is_sent(
    services: Services, stored: Stored
) -> None:
    for args in (
        ["dead-letters", "list", "--task", stored.task],
        ["requests", "show", stored.order_id],
        ["dead-letters", "replay", str(stored.letter_id)],
    ):
        code, output = in_terminal(services, *args)
        assert code in (0, 1), output
        assert_inert(output)
        assert "\\x1b]52;c;aGk=\\x07" in output and "\\x9b" in output, output

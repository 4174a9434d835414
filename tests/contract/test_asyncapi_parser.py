"""The generated AsyncAPI document, checked by the real AsyncAPI parser (@asyncapi/parser)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from events import contract
from events.asyncapi import asyncapi
from tests.node import node_tools

COMMITTED = Path(__file__).resolve().parents[2] / "contract" / "asyncapi.yaml"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    tools = node_tools()
    return subprocess.run(
        ["node", str(tools / "validate.mjs"), str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_committed_document_is_valid_asyncapi_3() -> None:
    done = validate(COMMITTED)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid AsyncAPI 3.0.0, 4 channels, 13 operations, 13 messages" in done.stdout


def test_the_json_rendering_is_valid_too(tmp_path: Path) -> None:
    path = tmp_path / "asyncapi.json"
    path.write_text(contract.render(asyncapi(), "json"))
    done = validate(path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_parser_refuses_a_broken_reference(tmp_path: Path) -> None:
    """The check above can fail: a dangling $ref is an error."""
    broken = COMMITTED.read_text().replace(
        "#/components/schemas/RequestChange", "#/components/schemas/Missing"
    )
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    done = validate(path)
    assert done.returncode == 1
    assert "#/components/schemas/Missing' does not exist" in done.stdout

"""The AsyncAPI document renders to one static HTML page with the AsyncAPI generator."""

from __future__ import annotations

import subprocess
from pathlib import Path

from events.inbound import INBOUND
from events.schemas import EVENT_DATA
from tests.node import ROOT, node_project


def test_the_document_renders_to_one_html_page_naming_every_message(tmp_path: Path) -> None:
    # The template's PDF export needs a browser download; the HTML page does not.
    project = node_project(ROOT / "tools" / "asyncapi-html", PUPPETEER_SKIP_DOWNLOAD="1")
    done = subprocess.run(
        ["node", str(project / "render.mjs"), str(ROOT / "contract" / "asyncapi.yaml"),
         str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    page = (tmp_path / "index.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "<script src=" not in page, "the page must stand alone (singleFile)"
    for name in [*INBOUND, *EVENT_DATA]:
        assert name in page, name

"""Node.js tools under tools/asyncapi (AsyncAPI parser, celery-node), installed on demand."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def node_tools() -> Path:
    """tools/asyncapi with its node_modules; skips the test where Node.js is absent."""
    return node_project(ROOT / "tools" / "asyncapi")


def node_project(project: Path, **env: str) -> Path:
    """A Node.js project of the repository, its node_modules installed from its lock file
    (with `env` added to npm's environment); skips the test where Node.js is absent."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js (node and npm, 18 or newer) is not installed: this check needs it")
    if not (project / "node_modules").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=project, capture_output=True, text=True, timeout=600, env={**os.environ, **env},
        )  # fmt: skip
        assert done.returncode == 0, f"npm ci in {project} failed:\n{done.stdout}\n{done.stderr}"
    return project

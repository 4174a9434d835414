"""The package layout, read from the source with `ast`: what imports what."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "events", "worker", "bench", "tests")
TASKS_MODULE = "worker.entrypoints.tasks"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def _resolve(name: str) -> str | None:
    """The project module an imported dotted name lives in, or None if it is not ours."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str) -> set[str]:
    """Every dotted name `module` imports, at any depth (function-level imports too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _names_imported(path.read_text(encoding="utf-8"), package)


def _names_imported(source: str, package: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            # `from worker import settings` imports the module worker.settings.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _project_imports(module: str) -> set[str]:
    targets = {_resolve(name) for name in _imported(module)}
    return {target for target in targets if target is not None and target != module}


def _cycles() -> list[list[str]]:
    graph = {module: sorted(_project_imports(module)) for module in sorted(MODULES)}
    done: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for target in graph[module]:
            visit(target, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])
    return found


def test_no_module_of_the_project_imports_itself_through_others() -> None:
    """No import cycle, counting imports inside functions: a cycle runs a module twice."""
    assert _cycles() == []


def test_the_check_reads_imports_inside_functions_and_relative_ones() -> None:
    """A lazy import inside a function, where cycles hide, counts like one at the top."""
    source = "def f():\n    from worker import settings\n    from . import logs\n"
    assert _names_imported(source, "worker.cli") >= {"worker.settings", "worker.cli.logs"}


def test_the_celery_task_module_imports_no_sqlalchemy() -> None:
    """The tasks deal with the message and its retries; the database is an adapter's."""
    imported = _imported(TASKS_MODULE)
    assert not [name for name in imported if name.split(".")[0] == "sqlalchemy"]


def _folder_map() -> dict[str, int]:
    """The README's folder map: each path it names (from its indentation), and its line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Folder map", 1)[1].split("```", 2)[1]
    paths: dict[str, int] = {}
    parents: list[str] = []
    for number, line in enumerate(block.splitlines()):
        name = line.strip().split("  ")[0]
        if not name or line.startswith(" " * 24):  # empty, or a description's second line
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        parents = [*parents[:depth], name]
        paths["".join(parents).rstrip("/")] = number
    return paths


def _worker_tree() -> set[str]:
    """worker/'s subpackages and modules, as the folder map names them."""
    names = {"worker"}
    for path in (ROOT / "worker").rglob("*"):
        relative = path.relative_to(ROOT)
        if "__pycache__" in relative.parts or path.name in ("__init__.py", "__main__.py"):
            continue
        if "migrations" in relative.parts[:-1]:  # Alembic's own files: the folder is named
            continue
        if path.is_dir() or path.suffix == ".py":
            names.add(relative.as_posix())
    return names


def test_the_readme_folder_map_names_every_subpackage_and_module_of_worker() -> None:
    """A newcomer finds every module of worker/ in the README's folder map."""
    named = {path for path in _folder_map() if path.split("/")[0] == "worker"}
    assert sorted(_worker_tree() - named) == []


def test_every_path_in_the_readme_folder_map_exists() -> None:
    """The folder map names nothing that is not in the tree."""
    assert [path for path in _folder_map() if not (ROOT / path).exists()] == []


def test_the_pre_commit_hooks_run_what_make_lint_runs() -> None:
    """A developer's commit is checked as CI checks it: the same three commands."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    hooks = [h["entry"] for repo in config["repos"] for h in repo["hooks"]]
    makefile = (root / "Makefile").read_text()
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    lint = [line.strip().replace("$(BIN)/", ".venv/bin/") for line in recipe.splitlines()[1:]]
    assert hooks == lint


def test_no_module_of_the_product_is_over_300_lines() -> None:
    """Small pieces: every module of domain/, events/, worker/ and bench/ (migrations aside)."""
    long = {
        name: lines
        for name, path in MODULES.items()
        if name.split(".")[0] in ("domain", "events", "worker", "bench")
        and ".migrations." not in name
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > 300
    }
    assert long == {}

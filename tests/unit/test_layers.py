"""The arrows of docs/architecture.md, checked: every import (module level or inside a
function) of every module, read with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


CORE = [
    p
    for p in _modules("aiops")
    if "api" not in p.relative_to(ROOT / "aiops").parts[:1] and p.name != "cli.py"
]


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_prefect_starlette_flows_tasks_or_deployments(path):
    banned = {"prefect", "starlette", "flows", "tasks", "deployments"}
    assert not {n for n in _imports(path) if _top(n) in banned}


@pytest.mark.parametrize("path", _modules("aiops/api"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_api_triggers_flows_by_deployment_name_and_never_imports_them(path):
    assert not {n for n in _imports(path) if _top(n) in {"flows", "tasks", "deployments"}}


@pytest.mark.parametrize("path", _modules("tasks"), ids=lambda p: str(p.relative_to(ROOT)))
def test_tasks_never_import_flows(path):
    assert not {n for n in _imports(path) if _top(n) in {"flows", "deployments"}}

"""Imports point one way: spaces ← objectives ← search engine ← inspection ← API ← CLI, and
`medslim.errors` / `medslim.kinds` / `medslim.files` (torch-free vocabulary and file
writing) import no layer.

Every `import`/`from ... import` of a medslim module, at any depth (also inside functions
and `TYPE_CHECKING` blocks), is checked against the layer rules below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FOLDERS = {"medslim": "medslim", "search": "medslim.search", "spaces": "medslim.spaces"}
FOLDERS["objectives"] = "medslim.objectives"

# module prefix → prefixes it must not import
FORBIDDEN = {
    "medslim": ("medslim.search.cli",),
    "medslim.spaces": ("medslim.objectives", "medslim.search"),
    "medslim.objectives": ("medslim.search",),
    "medslim.search.cli": (),
    "medslim.search.api": ("medslim.search.cli",),
    "medslim.search.inspection": ("medslim.search.cli", "medslim.search.api"),
    "medslim.search": ("medslim.search.cli", "medslim.search.inspection", "medslim.search.api"),
    "medslim.errors": ("medslim.search", "medslim.spaces", "medslim.objectives"),
    "medslim.kinds": ("medslim.search", "medslim.spaces", "medslim.objectives"),
    "medslim.files": ("medslim.search", "medslim.spaces", "medslim.objectives"),
}


def _modules() -> dict[str, Path]:
    """Every package module by its installed name (folders mapped as pyproject maps them)."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            modules[name] = path
    return modules


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.split(".")[0] in ("medslim", *FOLDERS)}


def _rule(module: str) -> tuple[str, ...]:
    prefix = max((p for p in FORBIDDEN if module == p or module.startswith(p + ".")), key=len)
    return FORBIDDEN[prefix]


MODULES = _modules()


def test_the_scan_sees_every_layer() -> None:
    assert {"medslim.search.loop", "medslim.search.cli.app", "medslim.spaces.families"} <= set(
        MODULES
    )
    assert "medslim.search.inspection.report" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_one_way(module: str) -> None:
    imported = _imports(MODULES[module])
    bare = sorted(
        name for name in imported if name.split(".")[0] in ("search", "spaces", "objectives")
    )
    assert not bare, f"{module} imports {bare}: use absolute medslim. imports"
    forbidden = _rule(module)
    wrong = sorted(
        name
        for name in imported
        for prefix in forbidden
        if name == prefix or name.startswith(prefix + ".")
    )
    assert not wrong, f"{module} must not import {wrong}"

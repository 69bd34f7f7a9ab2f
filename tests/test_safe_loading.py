"""Nothing medslim loads may run code: every torch.load passes weights_only=True, and no
module unpickles (a teacher file or a storage value is data, never a program)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = [
    Path(__file__).parents[1] / name for name in ("medslim", "search", "spaces", "objectives")
]


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str:
    return ast.unparse(call.func)


def test_every_torch_load_is_weights_only() -> None:
    loads = []
    for path in sorted(p for package in PACKAGES for p in package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for call in _calls(tree):
            if _name(call) == "torch.load":
                keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
                loads.append((path.name, call.lineno, keywords.get("weights_only")))
            assert not _name(call).startswith(("pickle.", "dill.", "joblib.load")), path
            if _name(call) in ("np.load", "numpy.load"):
                allow = [ast.unparse(k.value) for k in call.keywords if k.arg == "allow_pickle"]
                assert allow == ["False"], f"{path}:{call.lineno} must pass allow_pickle=False"
    assert loads, "no torch.load found: the scan is looking in the wrong place"
    assert [load for load in loads if load[2] != "True"] == []

"""The benchmarks use clickintent's public API only (issue 22): no `from clickintent... import _name`, no
`module._name` on a clickintent module, no private helper module of their own. A name a benchmark needs is
made public, with a docstring, in the library module it comes from. Third-party internals (RecBole's, in a
peer's worker script) are the peers' business and are not checked; nor are the peers' worker scripts' own
names (`_coles_worker.py` is run, not imported)."""

from __future__ import annotations

import ast
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def private_uses(source: str) -> list[str]:
    """`module.name` of every private name `source` takes from clickintent, or a private module it imports."""
    tree = ast.parse(source)
    found, modules = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            if _private(node.module):
                found.append(node.module)
            for alias in node.names:
                if node.module.startswith("clickintent"):
                    modules.add(alias.asname or alias.name)
                    if _private(alias.name):
                        found.append(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _private(alias.name)]
            modules |= {alias.asname or alias.name for alias in node.names if alias.name.startswith("clickintent")}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        if _private(node.attr) and node.value.id in modules:
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_the_checker_sees_private_names() -> None:
    src = "from clickintent.encoder.train import TrainConfig, _optimizer\nfrom clickintent.ingest.presets import s\n"
    assert private_uses(src + "s._bq_json(1)\nfrom _common import x\n") == [
        "clickintent.encoder.train._optimizer", "_common", "s._bq_json"
    ]
    assert private_uses("from __future__ import annotations\nimport numpy as np\nnp._x\n") == []


def test_benchmarks_import_no_private_names() -> None:
    scripts = sorted(p for p in BENCHMARKS.rglob("*.py") if ".venvs" not in p.parts)  # peer venvs are not ours
    assert len(scripts) > 20
    found = {str(p.relative_to(BENCHMARKS)): private_uses(p.read_text()) for p in scripts}
    assert {k: v for k, v in found.items() if v} == {}

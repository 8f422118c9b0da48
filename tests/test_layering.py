"""Imports run one way: each package imports only the packages below it in `LAYERS`."""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, Set, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Lowest first: the feature contract and shared mechanics, the data layer, the trainer, the
# evaluation library, compression (judged by the evaluation), the TFX components, the pipeline
# assembly, then the serving, online-learning, Kubeflow and command-line layers on top.
LAYERS = ("core", "ingest", "trainer", "evaluation", "compression", "components", "pipeline",
          "serving", "online", "kubeflow", "cli")


def imported_packages(path: pathlib.Path) -> Set[Tuple[str, int]]:
    """(top-level project package, line) of every absolute import in `path`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in LAYERS)
    return found


def package_imports() -> Dict[str, Dict[str, str]]:
    """package -> imported package -> one place ('file:line') that imports it."""
    edges: Dict[str, Dict[str, str]] = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            for target, line in imported_packages(path):
                if target != package:
                    edges.setdefault(package, {}).setdefault(target, f"{path.relative_to(ROOT)}:{line}")
    return edges


def test_every_layer_is_a_package_of_the_tree():
    assert all((ROOT / package / "__init__.py").is_file() for package in LAYERS)


def test_imports_only_run_down_the_layers():
    rank = {package: i for i, package in enumerate(LAYERS)}
    upward = [f"{where}: {package} imports {target}"
              for package, targets in package_imports().items()
              for target, where in targets.items() if rank[target] > rank[package]]
    assert upward == []


def test_no_two_packages_import_each_other():
    edges = package_imports()
    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and a in edges.get(b, {}))
    assert cycles == []


def test_the_checker_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom serving.client import x\nimport trainer.model\n", encoding="utf-8")
    assert imported_packages(module) == {("serving", 2), ("trainer", 3)}

"""lineage/ is a pure library: importing all of it must not pull in Ray or DuckDB."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import lineage

FORBIDDEN = ("ray", "duckdb")
ENTRYPOINT = "__main__.py"  # `python -m lineage` delegates to the CLI in jobs/


def _lineage_files() -> list[Path]:
    root = Path(lineage.__file__).parent
    return [p for p in root.rglob("*.py") if p.name != ENTRYPOINT]


def test_no_lineage_module_imports_ray_or_duckdb_in_its_source():
    offenders = []
    for path in _lineage_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            names += [n for n in names if n.split(".")[0] in ("jobs", "catalog")]
            offenders += [
                f"{path}: {n}" for n in names if n.split(".")[0] in FORBIDDEN + ("jobs", "catalog")
            ]
    assert offenders == []
    assert len(_lineage_files()) > 10  # the walk really saw the package


def test_importing_every_lineage_module_loads_neither_ray_nor_duckdb():
    modules = [
        m.name
        for m in pkgutil.walk_packages(lineage.__path__, "lineage.")
        if not m.name.endswith("__main__")
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

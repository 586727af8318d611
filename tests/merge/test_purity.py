"""lineage.merge stays a plain library: no Ray, no DuckDB, even transitively."""

from __future__ import annotations

import subprocess
import sys


def test_merge_imports_neither_ray_nor_duckdb():
    code = ("import sys, lineage.merge, lineage.merge.fisher, lineage.merge.tall; "
            "print(sorted(m for m in ('ray', 'duckdb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"

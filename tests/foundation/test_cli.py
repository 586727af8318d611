"""The CLI end to end in a subprocess: index, query in three formats, clear errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys


def _lineage(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "lineage", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_index_then_sql_in_every_format(models_dir, tmp_path):
    catalog = tmp_path / "cat"
    out = _lineage(
        "index", str(models_dir / "org"), "--quiet", env={"LINEAGE_CATALOG": str(catalog)}
    )
    assert out.returncode == 0, out.stderr
    assert "indexed 5, unchanged 0, failed 0" in out.stdout
    query = "SELECT model_id, n_params FROM models WHERE model_type = ? ORDER BY model_id"
    as_json = _lineage(
        "sql", query, "--param", "gpt2", "--format", "json", "--catalog", str(catalog)
    )
    rows = json.loads(as_json.stdout)
    assert [r["model_id"] for r in rows] == ["gpt2", "gpt2-sharded"]
    assert rows[0]["n_params"] == rows[1]["n_params"] > 0
    as_csv = _lineage("sql", query, "--param", "gpt2", "--format", "csv", "--catalog", str(catalog))
    assert list(csv.reader(io.StringIO(as_csv.stdout)))[1][0] == "gpt2"
    table = _lineage("sql", query, "--param", "gpt2", "--catalog", str(catalog))
    assert table.stdout.splitlines()[0].split() == ["model_id", "n_params"]
    assert "(2 rows)" in table.stdout


def test_default_catalog_is_lineage_catalog_in_the_working_dir(models_dir, tmp_path):
    env = {"LINEAGE_CATALOG": ""}
    env_clean = {k: v for k, v in os.environ.items() if k != "LINEAGE_CATALOG"}
    out = subprocess.run(
        [sys.executable, "-m", "lineage", "index", str(models_dir / "org/vit"), "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env_clean,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "lineage-catalog" / "catalog.duckdb").is_file()
    del env


def test_errors_are_one_clear_line_and_a_nonzero_exit(tmp_path):
    missing = _lineage("sql", "SELECT 1", "--catalog", str(tmp_path / "none"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("lineage: error: catalog ")
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "m.bin").write_bytes(b"not really a pickle")
    refused = _lineage("index", str(tmp_path / "m.bin"), "--catalog", str(tmp_path / "c"))
    assert refused.returncode == 1
    assert "pickle format" in refused.stdout + refused.stderr
